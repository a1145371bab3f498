"""Batched generation gives what one-at-a-time generation gives, and stops where it should."""

from tunesmith.conversation import Conversation, Message
from tunesmith.evaluate.predict import encode_prompt, generate

PROMPTS = [[{"role": "user", "content": "word " * n + "?"}] for n in (1, 9, 3, 15, 6)]


def test_batched_matches_one_at_a_time_and_keeps_order(tiny):
    one = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=6, batch_size=1)
    batched = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=6, batch_size=4)
    assert [g.text for g in batched] == [g.text for g in one]
    assert [g.prompt_tokens for g in batched] == [len(encode_prompt(tiny.tokenizer, p)) for p in PROMPTS]
    assert all(g.finish_reason == "length" and g.completion_tokens == 6 for g in batched)
    assert tiny.tokenizer.pad_token_id != tiny.tokenizer.eos_token_id


def test_conversation_prompt_leaves_out_the_reference_answer(tiny):
    conv = Conversation([Message("user", "hi"), Message("assistant", "SECRET ANSWER")])
    ids = encode_prompt(tiny.tokenizer, conv)
    assert "SECRET" not in tiny.tokenizer.decode(ids)
    assert ids == encode_prompt(tiny.tokenizer, [Message("user", "hi")])
    live_chat = Conversation([Message("user", "hi"), Message("assistant", "hello"), Message("user", "and then?")])
    assert "and then?" in tiny.tokenizer.decode(encode_prompt(tiny.tokenizer, live_chat))


def test_stop_strings_are_trimmed(tiny):
    plain = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], max_new_tokens=6)[0].text
    assert plain  # the tiny random model says something we can cut
    stop = plain[1:3] if len(plain) > 2 else plain[-1]
    cut = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], max_new_tokens=6, stop=[stop])[0]
    assert cut.text == plain[: plain.find(stop)]
    assert cut.finish_reason == "stop"


def test_eos_ends_a_row_and_is_counted(tiny, monkeypatch):
    first = generate(tiny.model, tiny.tokenizer, PROMPTS[:1], max_new_tokens=4)[0].text
    first_id = tiny.tokenizer.encode(first[:1], add_special_tokens=False)[0]
    # declare the model's own first token an end-of-turn token: generation must stop right there
    monkeypatch.setattr(tiny.model.generation_config, "eos_token_id", [tiny.tokenizer.eos_token_id, first_id])
    gen = generate(tiny.model, tiny.tokenizer, PROMPTS[:1], max_new_tokens=4)[0]
    assert gen.text == "" and gen.finish_reason == "stop" and gen.completion_tokens == 1


def test_sampling_is_reproducible_with_a_seed(tiny):
    a = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=5, temperature=1.0, seed=7)
    b = generate(tiny.model, tiny.tokenizer, PROMPTS, max_new_tokens=5, temperature=1.0, seed=7)
    assert [g.text for g in a] == [g.text for g in b]
