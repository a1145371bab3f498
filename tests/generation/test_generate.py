"""`generate`: batched gives what one-at-a-time gives, prompts are rendered as in training, rows stop where they
should, and a shared prompt start is prefilled once."""

import pytest
import torch

from tunesmith.conversation import Conversation, Message
from tests.generation.conftest import lively_model
from tunesmith.generation import (PREFIX_CACHE_MIN_TOKENS, common_prefix_len, encode_prompt, generate,
                                  shared_prefix_len)

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


# a system prompt long enough to be cached, then questions of different lengths: batches mix suffix lengths
SHARED = [[{"role": "system", "content": "Answer in the query language. " * 8}, {"role": "user", "content": q}]
          for q in ("count users", "orders where total over 100 grouped by month please", "zeta", "join users orders",
                    "sum of omega by alpha and beta then limit 5", "42 42 42 select", "where")]


def embedded_lengths(model):
    """Record how many tokens each forward pass embeds: what was prefilled (or decoded) per call."""
    lengths: list[int] = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    return lengths, handle


def assert_prefix_cache_changes_nothing(model, tokenizer, **kwargs) -> None:
    """Same tokens, counts and finish with and without the prefix cache; the cached run embeds the shared prefix
    once and then only each prompt's tail."""
    shared = shared_prefix_len([encode_prompt(tokenizer, p) for p in SHARED])
    assert shared >= PREFIX_CACHE_MIN_TOKENS
    plain = generate(model, tokenizer, SHARED, prefix_cache=False, **kwargs)
    lengths, handle = embedded_lengths(model)
    try:
        cached = generate(model, tokenizer, SHARED, **kwargs)
    finally:
        handle.remove()
    assert [g.token_ids for g in cached] == [g.token_ids for g in plain]
    assert [(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in cached] == \
           [(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in plain]
    assert lengths[0] == shared and max(lengths[1:]) < shared  # each prefill read only its own tail


def test_shared_prefix_is_prefilled_once_and_answers_do_not_change():
    model, tokenizer = lively_model()
    model.generation_config.eos_token_id = None
    # batch 3 over 7 prompts: rows join as others finish, each prefilling a tail of its own length
    assert_prefix_cache_changes_nothing(model, tokenizer, max_new_tokens=8, batch_size=3)
    assert_prefix_cache_changes_nothing(model, tokenizer, max_new_tokens=4, batch_size=4,
                                        temperature=1.0, seed=3, stop=["e"])


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # PEFT probes a v5-deprecated name
def test_prefix_cache_with_a_lora_adapter():
    from peft import LoraConfig, get_peft_model

    base, tokenizer = lively_model()
    base.generation_config.eos_token_id = None
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, lora).eval()
    assert_prefix_cache_changes_nothing(model, tokenizer, max_new_tokens=6, batch_size=4)
def test_short_or_missing_shared_prefix_takes_the_plain_path(tiny):
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_len([[7, 8, 9]]) == 3 and common_prefix_len([]) == 0
    encoded = [encode_prompt(tiny.tokenizer, p) for p in PROMPTS]
    assert 0 < common_prefix_len(encoded) < PREFIX_CACHE_MIN_TOKENS
    assert shared_prefix_len(encoded) == 0
    # one prompt is the other plus one token: the prefix stops one short so every row still feeds a token
    assert shared_prefix_len([list(range(40)), list(range(41))]) == 39
    assert shared_prefix_len([list(range(40))]) == 0  # nothing to share
