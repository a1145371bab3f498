"""Loss masks: only assistant turns with weight != 0 carry loss, end-of-turn token included, for every family."""

import pytest

from tests.training.conftest import family_tokenizer
from tunesmith.conversation import Conversation
from tunesmith.training.render import RenderError, render_example

FAMILIES = ["smollm2", "llama2", "llama3", "phi3"]
END_OF_TURN = {"smollm2": "<|im_end|>", "llama2": "</s>", "llama3": "<|eot_id|>", "phi3": "<|end|>"}


def two_turns(first_weight=None) -> Conversation:
    return Conversation.from_openai({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris", **({"weight": first_weight} if first_weight is not None else {})},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome"},
    ]})


def trained_spans(example, tokenizer) -> list[str]:
    spans, current = [], []
    for token, trained in zip(example.ids, example.trained):
        if trained:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


@pytest.mark.parametrize("family", FAMILIES)
def test_only_assistant_answers_and_their_end_of_turn_carry_loss(family):
    tokenizer = family_tokenizer(family)
    example = render_example(two_turns(), tokenizer)
    eot = END_OF_TURN[family]
    gap = " " if family == "llama2" else ""  # Llama 2 renders " Paris </s>"
    assert [s.strip() for s in trained_spans(example, tokenizer)] == [f"Paris{gap}{eot}", f"Rome{gap}{eot}"]


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_zero_turn_and_prompt_have_label_minus_100(family):
    tokenizer = family_tokenizer(family)
    example = render_example(two_turns(first_weight=0), tokenizer)
    labels = example.labels()
    spans = trained_spans(example, tokenizer)
    assert len(spans) == 1 and spans[0].strip().startswith("Rome")
    prompt_text = tokenizer.decode([i for i, label in zip(example.ids, labels) if label == -100])
    assert "Paris" in prompt_text and "Capital of France?" in prompt_text and "Be brief." in prompt_text
    assert all(label == -100 for label, t in zip(labels, example.trained) if not t)
    assert all(label == i for label, i, t in zip(labels, example.ids, example.trained) if t)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_double_bos_and_pad_is_not_eos(family):
    tokenizer = family_tokenizer(family)
    ids = render_example(two_turns(), tokenizer).ids
    assert not (ids[0] == ids[1] == tokenizer.bos_token_id)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_what_follows_the_end_of_turn_token_is_not_trained():
    tokenizer = family_tokenizer("phi3")  # renders "<|end|>\n<|endoftext|>" after the last answer
    example = render_example(two_turns(), tokenizer)
    last_trained = max(i for i, t in enumerate(example.trained) if t)
    assert tokenizer.convert_ids_to_tokens(example.ids[last_trained]) == "<|end|>"
    assert not any(example.trained[last_trained + 1 :])


def test_tool_calls_are_trained_as_the_template_renders_them():
    tokenizer = family_tokenizer("llama3")
    conversation = Conversation.from_openai({
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {"role": "assistant", "content": "It is 18C."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    })
    # .strip(): this BPE merges the header's "\n\n" with "{", so that boundary token is trained too.
    spans = [s.strip() for s in trained_spans(render_example(conversation, tokenizer), tokenizer)]
    assert spans == ['{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>', "It is 18C.<|eot_id|>"]


def weather_conversation(parallel: bool = False) -> Conversation:
    calls = [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]
    results = [{"role": "tool", "tool_call_id": "c1", "content": "18C"}]
    if parallel:
        calls.append({"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}})
        results.append({"role": "tool", "tool_call_id": "c2", "content": "24C"})
    return Conversation.from_openai({
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                     {"role": "assistant", "content": None, "tool_calls": calls}, *results,
                     {"role": "assistant", "content": "Warm."}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    })


@pytest.mark.parametrize("family", ["smollm2", "llama2", "phi3"])
def test_templates_without_tool_support_train_the_call_as_hermes_text_the_server_reads_back(family):
    from tunesmith.chat_templates import renders_tools
    from tunesmith.server.tool_calls import parse_tool_calls

    tokenizer = family_tokenizer(family)
    assert not renders_tools(tokenizer)  # the shipped template would train an empty turn
    conversation = weather_conversation(parallel=True)
    example = render_example(conversation, tokenizer)
    spans = trained_spans(example, tokenizer)
    assert len(spans) == 2 and "Warm." in spans[1]
    content, calls = parse_tool_calls(spans[0].replace(END_OF_TURN[family], "").strip(), conversation.tools)
    assert content is None and [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]
    prompt = tokenizer.decode([i for i, t in zip(example.ids, example.trained) if not t])
    assert '"name": "get_weather"' in prompt and "Be brief." in prompt  # the tools, in the system turn
    assert "<tool_response>\n18C\n</tool_response>\n<tool_response>\n24C\n</tool_response>" in prompt


def test_native_tool_templates_get_the_conversation_unchanged():
    from tunesmith.chat_templates import template_input

    tokenizer = family_tokenizer("llama3")
    conversation = weather_conversation()
    rendered = template_input(tokenizer, conversation)
    assert rendered.messages == conversation.to_template_messages() and rendered.tools == conversation.tools


def test_prompts_for_generation_carry_the_tools_as_in_training():
    from tunesmith.generation import encode_prompt

    tokenizer = family_tokenizer("smollm2")
    conversation = weather_conversation()
    head = Conversation(conversation.messages[:2], conversation.tools)
    text = tokenizer.decode(encode_prompt(tokenizer, head))
    trained_prompt = tokenizer.decode(render_example(conversation, tokenizer).ids)
    assert "<tools>" in text and trained_prompt.startswith(text)


def test_template_without_end_of_turn_is_refused():
    tokenizer = family_tokenizer("smollm2")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(RenderError, match="end-of-turn"):
        render_example(two_turns(), tokenizer)


def test_truncation_marks_the_example():
    tokenizer = family_tokenizer("smollm2")
    full = render_example(two_turns(), tokenizer)
    cut = render_example(two_turns(), tokenizer, max_length=len(full) - 3)
    assert cut.truncated and len(cut) == len(full) - 3 and cut.ids == full.ids[: len(cut)]
