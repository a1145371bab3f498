"""Function calling through the OpenAI-compatible server: a model fine-tuned to call a tool answers with
`message.tool_calls`, streamed or not, and the `openai` SDK's function-calling loop runs against it.

The parser is checked on replies rendered by the real chat templates through the trainer's own renderer, and
end to end on a tiny model that tunesmith's trainer taught one tool call.
"""

from __future__ import annotations

import copy
import json

import openai
import pytest

from tests.server.live_server import running_server
from tunesmith.chat_templates import apply_family_template, template_input
from tunesmith.conversation import Conversation
from tunesmith.artifacts.run_dir import run_dir_for
from tunesmith.jobs.store import JobRecord, JobStore, default_db_url, new_id, now
from tunesmith.models import build_tiny_model, load_smollm2_tokenizer
from tunesmith.server.settings import ServerSettings
from tunesmith.server.tool_calls import (ToolCallStream, call_format, forced_opening, ids_with_opening,
                                        parse_tool_calls)
from tunesmith.train_config import TrainConfig
from tunesmith.training.render import render_example
from tunesmith.training.sft import train

# Qwen/Qwen2.5-0.5B-Instruct's chat template (tokenizer_config.json), verbatim: the ChatML family with tools,
# `<tool_call>{"name", "arguments"}</tool_call>` blocks, that hub models served by id bring with them.
QWEN25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ARGS = {"city": "Paris", "unit": "celsius"}


def call(name: str, arguments: dict, i: int = 1) -> dict:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def weather_example(i: int, content: str | None = None, calls: list[dict] | None = None) -> dict:
    return {"messages": [{"role": "user", "content": f"What is the weather in Paris? (request {i})"},
                         {"role": "assistant", "content": content, "tool_calls": calls or [call("get_weather", ARGS)]}],
            "tools": [WEATHER, TIME]}


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    return load_smollm2_tokenizer()


def tokenizer_for(base, template: str):
    """SmolLM2's vocabulary with a family's real chat template ("llama3", "smollm2") or Qwen 2.5's ("qwen2.5")."""
    tokenizer = copy.deepcopy(base)
    if template == "qwen2.5":
        tokenizer.chat_template = QWEN25  # ChatML: <|im_start|>/<|im_end|> are SmolLM2's own tokens
        return tokenizer
    return apply_family_template(tokenizer, template)


def trained_reply(tokenizer, example: dict) -> str:
    """The assistant turn exactly as the trainer teaches it, decoded as the server decodes a generation."""
    rendered = render_example(Conversation.from_openai(example), tokenizer)
    return tokenizer.decode([i for i, t in zip(rendered.ids, rendered.trained) if t], skip_special_tokens=True)


@pytest.mark.parametrize("template", ["llama3", "qwen2.5", "smollm2"])
def test_a_rendered_tool_call_parses_back_to_the_openai_call(smollm2_tokenizer, template):
    reply = trained_reply(tokenizer_for(smollm2_tokenizer, template), weather_example(0))
    assert "get_weather" in reply  # the template really wrote the call into the training text
    content, calls = parse_tool_calls(reply, [WEATHER, TIME])
    assert content is None and len(calls) == 1
    assert calls[0]["type"] == "function" and calls[0]["id"].startswith("call_") and len(calls[0]["id"]) > 10
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == ARGS  # a JSON string, as OpenAI carries it


def test_text_before_calls_is_content_and_several_calls_keep_their_order(smollm2_tokenizer):
    example = weather_example(0, "Let me check.", [call("get_weather", ARGS, 1), call("get_time", {}, 2)])
    reply = trained_reply(tokenizer_for(smollm2_tokenizer, "qwen2.5"), example)
    content, calls = parse_tool_calls(reply, [WEATHER, TIME])
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["function"]["arguments"]) == {} and calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize("template", ["llama3", "qwen2.5"])
def test_unknown_names_malformed_json_and_no_tools_stay_plain_content(smollm2_tokenizer, template):
    reply = trained_reply(tokenizer_for(smollm2_tokenizer, template), weather_example(0))
    assert parse_tool_calls(reply, [TIME]) == (reply, [])  # get_weather was not offered in this request
    assert parse_tool_calls(reply, None) == (reply, [])
    broken = reply.replace('"Paris"', '"Paris')
    assert parse_tool_calls(broken, [WEATHER]) == (broken, [])
    truncated = reply[: reply.index("celsius")]  # max_tokens cut the call short
    assert parse_tool_calls(truncated, [WEATHER]) == (truncated, [])
    assert parse_tool_calls('{"name": "get_weather"}', [WEATHER]) == ('{"name": "get_weather"}', [])
    assert parse_tool_calls("It is sunny in Paris.", [WEATHER]) == ("It is sunny in Paris.", [])


def test_streaming_holds_back_a_call_but_sends_plain_text_at_once(smollm2_tokenizer):
    tokenizer = tokenizer_for(smollm2_tokenizer, "qwen2.5")
    reply = trained_reply(tokenizer, weather_example(0, "Let me check."))
    stream = ToolCallStream([WEATHER])
    sent = "".join(stream.feed(ch) for ch in reply)
    assert sent == "Let me check."  # the text before the call went out; nothing of the call did
    rest, calls = stream.finish()
    assert rest == "" and [c["function"]["name"] for c in calls] == ["get_weather"]

    plain = ToolCallStream([WEATHER])
    assert plain.feed("It is") == "It is" and plain.feed(" sunny <tool") == " sunny"  # "<tool" may open a call
    assert plain.feed(" no. ") == " <tool no." and plain.finish() == (" ", [])

    llama = ToolCallStream([WEATHER])  # a Llama 3.1 call is a bare JSON object: held until it is complete
    reply = trained_reply(tokenizer_for(smollm2_tokenizer, "llama3"), weather_example(0))
    assert "".join(llama.feed(ch) for ch in reply) == ""
    assert llama.finish()[1][0]["function"]["name"] == "get_weather"


# --- tool_choice "required" / a named function: the reply is forced to start inside a call ---


def rendered_text(tokenizer, conversation: Conversation, generation_prompt: bool) -> str:
    rendered = template_input(tokenizer, conversation)
    return tokenizer.apply_chat_template(rendered.messages, tools=rendered.tools, tokenize=False,
                                         add_generation_prompt=generation_prompt)


@pytest.mark.parametrize("template, fmt, named", [
    ("llama3", "llama3", '{"name": "get_weather", "parameters":'),
    ("qwen2.5", "hermes", '<tool_call>\n{"name": "get_weather", "arguments":'),
    ("smollm2", "hermes", '<tool_call>\n{"name": "get_weather", "arguments":'),
])
def test_the_forced_opening_is_where_the_template_writes_a_call(smollm2_tokenizer, template, fmt, named):
    tokenizer = tokenizer_for(smollm2_tokenizer, template)
    assert call_format(tokenizer) == fmt
    assert forced_opening(fmt, "get_weather") == named
    conversation = Conversation.from_openai(weather_example(0))
    full = rendered_text(tokenizer, conversation, generation_prompt=False)
    prompt = rendered_text(tokenizer, Conversation(conversation.prompt_messages(), conversation.tools), True)
    for name in ("get_weather", None):  # named, and "required" (up to the name)
        opening = forced_opening(fmt, name)
        assert full.startswith(prompt + opening)  # the model continues exactly where the trained call goes on
        # and from the same tokens that training saw there (SmolLM2's vocabulary merges "\n{" after Llama's "\n\n")
        forced_ids = ids_with_opening(tokenizer, tokenizer.encode(prompt, add_special_tokens=False), opening)
        assert tokenizer.encode(full, add_special_tokens=False)[:len(forced_ids)] == forced_ids


def test_a_template_with_its_own_unreadable_call_format_is_not_forced(smollm2_tokenizer):
    tokenizer = copy.deepcopy(smollm2_tokenizer)  # Mistral-style [TOOL_CALLS]: rendered, but not a format we parse
    tokenizer.chat_template = ("{{ tools | tojson }}{% for m in messages %}{% if m.tool_calls %}[TOOL_CALLS]"
                               "{{ m.tool_calls | tojson }}{% else %}{{ m.content }}{% endif %}{% endfor %}")
    assert call_format(tokenizer) is None
    assert call_format(tokenizer_for(smollm2_tokenizer, "phi3")) == "hermes"  # no tool branch: tunesmith's text


# --- end to end: tunesmith's trainer teaches a tiny model the call; the SDK reads it back from the server ---


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory, smollm2_tokenizer):
    """A tiny model with SmolLM2's tokenizer and template (no tool support: tunesmith writes calls as Hermes text),
    fine-tuned on one tool call, served as a finished job's model."""
    root = tmp_path_factory.mktemp("tools")
    tokenizer = tokenizer_for(smollm2_tokenizer, "smollm2")
    base = root / "tiny-smollm2-tools"
    build_tiny_model(tokenizer).save_pretrained(str(base), safe_serialization=True)
    tokenizer.save_pretrained(str(base))
    data = root / "train.jsonl"  # the validator wants 10 distinct examples: the request number differs
    data.write_text("".join(json.dumps(weather_example(i)) + "\n" for i in range(10)))

    settings = ServerSettings(data_dir=root / "data")
    job_id = new_id("ftjob-")
    # 125 steps at 5x the LoRA rate: enough for a 64-wide random model to memorise the call (about 15 s)
    result = train(TrainConfig(model=str(base), train=data, n_epochs=25, batch_size=2, learning_rate_multiplier=5,
                               output=run_dir_for(settings.data_dir, job_id)))
    assert result.status == "succeeded"
    name = f"ft:tiny-smollm2-tools:weather:{job_id.removeprefix('ftjob-')}"
    store = JobStore(default_db_url(settings.data_dir))
    store.add_job(JobRecord(id=job_id, model=str(base), training_file="file-local", hyperparameters={}, seed=0,
                            status="succeeded", created_at=now(), finished_at=now(), fine_tuned_model=name,
                            result_files=[], attempts=1))
    store.close()
    with running_server(settings) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), name


QUESTION = [{"role": "user", "content": "What is the weather in Paris? (request 0)"}]


def test_the_sdk_gets_tool_calls_and_sends_the_result_back(tool_server):
    client, model = tool_server
    chat = client.chat.completions.create(model=model, messages=QUESTION, tools=[WEATHER, TIME], temperature=0,
                                          max_tokens=64)
    choice = chat.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather" and json.loads(tool_call.function.arguments) == ARGS

    follow_up = QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [tool_call.model_dump()]},
        {"role": "tool", "tool_call_id": tool_call.id, "content": json.dumps({"temperature": 18})},
    ]
    answer = client.chat.completions.create(model=model, messages=follow_up, tools=[WEATHER, TIME], temperature=0,
                                            max_tokens=8)
    assert answer.choices and answer.usage.prompt_tokens > chat.usage.prompt_tokens

    plain = client.chat.completions.create(model=model, messages=QUESTION, tools=[WEATHER, TIME], tool_choice="none",
                                           temperature=0, max_tokens=64)
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "stop"
    assert "<tool_call>" in plain.choices[0].message.content  # what the model wrote, left as text


def test_streamed_tool_calls_accumulate_in_the_sdk(tool_server):
    client, model = tool_server
    chunks = list(client.chat.completions.create(model=model, messages=QUESTION, tools=[WEATHER, TIME],
                                                 temperature=0, max_tokens=64, stream=True))
    assert not "".join(c.choices[0].delta.content or "" for c in chunks)  # the call never leaked out as text
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    with client.chat.completions.stream(model=model, messages=QUESTION, tools=[WEATHER, TIME], temperature=0,
                                        max_tokens=64) as stream:  # the SDK's own accumulator
        final = stream.get_final_completion()
    tool_call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls" and tool_call.id.startswith("call_")
    assert tool_call.function.name == "get_weather" and json.loads(tool_call.function.arguments) == ARGS


# The tiny model learnt its one call by position: a prompt as long as the trained question (in tokens) but about
# something else gets, on its own, an empty `<tool_call>` block that is no call; forced, it writes the call.
UNRELATED = [{"role": "user", "content": "What is two plus two, please? (request 0)"}]
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def test_a_named_function_is_called_even_where_the_model_would_answer_in_text(tool_server):
    client, model = tool_server
    kwargs = dict(model=model, messages=UNRELATED, tools=[WEATHER, TIME], temperature=0, max_tokens=48)
    auto = client.chat.completions.create(**kwargs)
    assert auto.choices[0].message.tool_calls is None and auto.choices[0].finish_reason == "stop"  # its choice: text

    forced = client.chat.completions.create(**kwargs, tool_choice=FORCE_WEATHER)
    choice = forced.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]
    assert "city" in json.loads(choice.message.tool_calls[0].function.arguments)
    # only generated tokens are completion tokens: the forced opening is part of the prompt
    assert forced.usage.prompt_tokens > auto.usage.prompt_tokens
    assert forced.usage.completion_tokens < 48

    with client.chat.completions.stream(**kwargs, tool_choice=FORCE_WEATHER) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls" and not final.choices[0].message.content
    assert [c.function.name for c in final.choices[0].message.tool_calls] == ["get_weather"]
    assert final.choices[0].message.tool_calls[0].function.arguments == choice.message.tool_calls[0].function.arguments


def test_required_makes_the_model_call_one_of_the_tools(tool_server):
    client, model = tool_server
    kwargs = dict(model=model, messages=UNRELATED, tools=[WEATHER, TIME], temperature=0, max_tokens=48,
                  tool_choice="required")
    choice = client.chat.completions.create(**kwargs).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "get_weather"
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather" and chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_forced_call_cut_short_comes_back_as_text_with_its_finish_reason(tool_server):
    client, model = tool_server
    chat = client.chat.completions.create(model=model, messages=UNRELATED, tools=[WEATHER], temperature=0,
                                          max_tokens=2, tool_choice=FORCE_WEATHER)
    choice = chat.choices[0]
    assert choice.finish_reason == "length" and choice.message.tool_calls is None
    assert choice.message.content.startswith('<tool_call>\n{"name": "get_weather", "arguments":')
    assert chat.usage.completion_tokens == 2


@pytest.mark.parametrize("tools, tool_choice, says", [
    ([WEATHER], {"type": "function", "function": {"name": "get_time"}}, "get_time"),
    (None, "required", "only allowed when 'tools'"),
    (None, FORCE_WEATHER, "only allowed when 'tools'"),
    ([WEATHER], "sometimes", "sometimes"),
    ([WEATHER], {"type": "function"}, "'type': 'function'"),
])
def test_a_tool_choice_that_cannot_be_obeyed_is_a_400(tool_server, tools, tool_choice, says):
    client, model = tool_server
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=UNRELATED, tool_choice=tool_choice, max_tokens=4,
                                       **({"tools": tools} if tools else {}))
    assert e.value.status_code == 400 and e.value.param == "tool_choice" and says in e.value.message
