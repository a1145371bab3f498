"""The engine answers like one-at-a-time generation while rows join, leave and fail around each other."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.generation.conftest import TEXTS, lively_model, text_prompts
from tunesmith.generation import BASE_MODEL, Engine, GenerationError, SamplingParams, generate
from tunesmith.generation.engine import MIXED

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def hf_greedy(model, prompt: list[int], max_new_tokens: int, **kwargs) -> list[int]:
    """The reference: transformers' own generate, one prompt at a time, greedy, no EOS."""
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                             dtype=torch.long), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=0, **kwargs)
    return out[0, len(prompt):].tolist()


def with_lora(model, names_seeds: list[tuple[str, int]]):
    """A PeftModel with one random LoRA adapter per (name, seed)."""
    peft = None
    for name, seed in names_seeds:
        torch.manual_seed(seed)
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
        if peft is None:
            peft = get_peft_model(model, config, adapter_name=name)
        else:
            peft.add_adapter(name, config)
    return peft.eval()


def no_eos(model):
    model.generation_config.eos_token_id = None  # random weights: let every row run to its max_tokens
    return model


def test_greedy_matches_transformers_one_at_a_time_while_rows_come_and_go():
    model, tokenizer = lively_model()
    no_eos(model)
    prompts = text_prompts(tokenizer, TEXTS)
    lengths = [3, 17, 8, 25, 1, 12, 30]  # rows finish at different steps and free their slots
    expected = [hf_greedy(model, p, n) for p, n in zip(prompts, lengths)]
    engine = Engine(model, tokenizer, max_batch=3)
    got = engine.generate(prompts, [SamplingParams(max_tokens=n) for n in lengths])
    assert [g.token_ids for g in got] == expected
    assert len(set(map(tuple, expected))) == len(expected)  # the prompts really answer differently
    assert max(engine.steps) == 3 and len(engine.steps) < sum(lengths) / 2  # batched, refilled as rows ended
    assert [g.completion_tokens for g in got] == lengths and all(g.finish_reason == "length" for g in got)


def test_lora_and_mixed_adapters_in_one_step_match_each_alone():
    model, tokenizer = lively_model()
    peft = with_lora(no_eos(model), [("one", 1), ("two", 2)])
    prompts = text_prompts(tokenizer, TEXTS[:6])
    adapters = [BASE_MODEL, "one", "two", "one", BASE_MODEL, "two"]
    expected = []
    for prompt, adapter in zip(prompts, adapters):
        if adapter == BASE_MODEL:
            with peft.disable_adapter():
                expected.append(hf_greedy(peft, prompt, 9))
        else:
            peft.set_adapter(adapter)
            expected.append(hf_greedy(peft, prompt, 9))
    engine = Engine(peft, tokenizer, max_batch=8)
    got = engine.generate(prompts, SamplingParams(max_tokens=9), adapters=adapters)
    assert [g.token_ids for g in got] == expected
    assert engine.steps[0] == 6  # all six rows, three models, in one decode step
    assert expected[0] != expected[1] != expected[2]  # the adapters do change the answer
    assert all(not m._forward_pre_hooks for m in peft.modules())  # PEFT's per-row hooks are gone


def test_a_peft_model_without_adapter_names_answers_with_its_active_adapter():
    """A fine-tuned run being evaluated: rows that name no adapter get the model as it is, adapter on."""
    model, tokenizer = lively_model()
    peft = with_lora(no_eos(model), [("tuned", 4)])
    prompts = text_prompts(tokenizer, TEXTS[:3])
    expected = [hf_greedy(peft, p, 6) for p in prompts]
    with peft.disable_adapter():
        base = [hf_greedy(peft, p, 6) for p in prompts]
    assert expected != base
    assert [g.token_ids for g in generate(peft, tokenizer, prompts, max_new_tokens=6)] == expected


def test_a_request_joins_mid_flight_and_does_not_wait_for_the_long_one():
    model, tokenizer = lively_model()
    no_eos(model)
    long_prompt, short_prompt = text_prompts(tokenizer, [TEXTS[1], TEXTS[3]])
    engine = Engine(model, tokenizer)
    long = engine.submit(long_prompt, SamplingParams(max_tokens=60))
    for _ in range(10):
        engine.step()
    short = engine.submit(short_prompt, SamplingParams(max_tokens=4))
    steps = 0
    while not short.done():
        engine.step()
        steps += 1
    assert steps <= 5 and not long.done()  # it joined the running batch and left it at once
    assert short.result().token_ids == hf_greedy(model, short_prompt, 4)
    while not long.done():
        engine.step()
    assert long.result().token_ids == hf_greedy(model, long_prompt, 60)


def poison_on(model, token: int):
    """Make every forward whose input holds `token` raise, as a broken row would."""
    def hook(module, args):
        if (args[0] == token).any():
            raise RuntimeError("poisoned row")
    return model.get_input_embeddings().register_forward_pre_hook(hook)


def test_a_row_that_raises_fails_alone_and_the_others_finish():
    model, tokenizer = lively_model()
    no_eos(model)
    prompts = text_prompts(tokenizer, TEXTS[:4])
    expected = [hf_greedy(model, p, 8) for p in prompts]
    poison = expected[2][3]  # row 2 raises once it feeds its 4th generated token: mid-flight, not at prefill
    assert all(poison not in e[:-1] for i, e in enumerate(expected) if i != 2)
    engine = Engine(model, tokenizer)
    handle = poison_on(model, poison)
    try:
        jobs = [engine.submit(p, SamplingParams(max_tokens=8)) for p in prompts]
        while not all(j.done() for j in jobs):
            engine.step()
    finally:
        handle.remove()
    with pytest.raises(GenerationError, match="poisoned row"):
        jobs[2].result()
    for i in (0, 1, 3):
        assert jobs[i].result().token_ids == expected[i]


def test_nan_adapter_fails_its_rows_only_then_the_base_model_serves_again():
    model, tokenizer = lively_model()
    peft = with_lora(no_eos(model), [("good", 1), ("nan", 2)])
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B.nan" in name:
                p.fill_(float("nan"))
    prompts = text_prompts(tokenizer, TEXTS[:3])
    engine = Engine(peft, tokenizer)
    jobs = [engine.submit(p, SamplingParams(max_tokens=6, temperature=0.8, seed=1), adapter=a)
            for p, a in zip(prompts, [BASE_MODEL, "nan", "good"])]
    while not all(j.done() for j in jobs):
        engine.step()
    with pytest.raises(GenerationError, match="non-finite"):
        jobs[1].result()
    assert jobs[0].result().completion_tokens == 6 and jobs[2].result().completion_tokens == 6
    with peft.disable_adapter():
        expected = hf_greedy(peft, prompts[0], 5)
    later = engine.generate([prompts[0]], SamplingParams(max_tokens=5), adapters=[BASE_MODEL])[0]
    assert later.token_ids == expected
    assert all(not m._forward_pre_hooks for m in peft.modules())


def test_a_mixed_adapter_forward_that_raises_leaves_no_hooks_behind():
    model, tokenizer = lively_model()
    peft = with_lora(no_eos(model), [("one", 1)])
    prompts = text_prompts(tokenizer, TEXTS[:2])
    handle = poison_on(peft, prompts[1][0])
    engine = Engine(peft, tokenizer)
    try:
        jobs = [engine.submit(p, SamplingParams(max_tokens=3), adapter=a)
                for p, a in zip(prompts, [BASE_MODEL, "one"])]
        while not all(j.done() for j in jobs):
            engine.step()
    finally:
        handle.remove()
    assert jobs[0].result().completion_tokens == 3
    with pytest.raises(GenerationError):
        jobs[1].result()
    lora_hooks = [m for m in peft.modules() if m._forward_pre_hooks]
    assert lora_hooks == []  # the failed mixed step's adapter_names hooks were removed
    later = engine.generate(prompts, SamplingParams(max_tokens=3), adapters=[BASE_MODEL, "one"])
    assert all(g.completion_tokens == 3 for g in later)


def test_an_abandoned_stream_frees_its_slot():
    model, tokenizer = lively_model()
    no_eos(model)
    prompt = text_prompts(tokenizer, [TEXTS[0]])[0]
    engine = Engine(model, tokenizer)
    engine.start()
    stream = engine.submit(prompt, SamplingParams(max_tokens=1900), stream=True)
    pieces = stream.stream()
    next(pieces)
    pieces.close()
    with pytest.raises(GenerationError, match="cancelled"):
        stream.result(timeout=10)
    assert engine.generate([prompt], SamplingParams(max_tokens=3))[0].completion_tokens == 3
    assert not engine.busy() and max(engine.steps) == 1 and len(engine.steps) < 200


def test_stop_strings_across_token_boundaries_are_cut_and_never_streamed():
    model, tokenizer = lively_model()
    no_eos(model)
    prompt = text_prompts(tokenizer, [TEXTS[1]])[0]
    tokens = hf_greedy(model, prompt, 12)
    before = tokenizer.decode(tokens[:4], skip_special_tokens=True)
    full = tokenizer.decode(tokens, skip_special_tokens=True)
    stop = full[len(before) - 2: len(before) + 2]  # the last two characters of token 4 and the first of token 5
    assert stop not in before[:-2] and len(stop) == 4
    engine = Engine(model, tokenizer)
    engine.start()
    job = engine.submit(prompt, SamplingParams(max_tokens=12, stop=[stop]), stream=True)
    pieces = list(job.stream())
    result = job.result()
    assert result.text == full[: full.find(stop)] and result.finish_reason == "stop"
    assert "".join(pieces) == result.text and all(stop[:2] not in p for p in pieces[-1:])
    assert result.completion_tokens == 5  # generation stopped at the token that completed the stop string


def test_sampling_with_a_seed_is_the_same_whatever_shares_the_batch():
    model, tokenizer = lively_model()
    no_eos(model)
    prompts = text_prompts(tokenizer, TEXTS[:4])
    sampled = SamplingParams(max_tokens=8, temperature=1.0, seed=11)
    alone = Engine(model, tokenizer).generate([prompts[0]], sampled)[0].token_ids
    crowd = Engine(model, tokenizer).generate(prompts, [sampled] + [SamplingParams(max_tokens=8, temperature=0.9)] * 3)
    assert crowd[0].token_ids == alone


def test_a_prompt_longer_than_the_context_is_refused_at_once():
    from tunesmith.generation import ContextLengthError

    model, tokenizer = lively_model()
    engine = Engine(model, tokenizer)
    with pytest.raises(ContextLengthError, match="maximum context length is 2048"):
        engine.submit(list(range(5, 2100)), SamplingParams(max_tokens=4))
    job = engine.submit(list(range(5, 2040)), SamplingParams(max_tokens=50))
    while not job.done():
        engine.step()
    assert job.result().completion_tokens <= 2048 - 2035


def test_logprobs_are_those_of_the_model():
    model, tokenizer = lively_model()
    no_eos(model)
    prompt = text_prompts(tokenizer, [TEXTS[0]])[0]
    got = generate(model, tokenizer, [prompt], max_new_tokens=3, logprobs=2)[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
    first = got.logprobs[0]
    assert first.token_id == int(logits.argmax()) and first.top[0][0] == first.token_id
    assert first.logprob == pytest.approx(float(torch.log_softmax(logits, -1).max()), abs=1e-4)
    assert len(first.top) == 2 and len(got.logprobs) == 3


def test_non_mixable_adapters_get_a_cohort_of_their_own():
    model, tokenizer = lively_model()
    no_eos(model)
    torch.manual_seed(3)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True,
                                            init_lora_weights=False, task_type="CAUSAL_LM"), adapter_name="dora").eval()
    engine = Engine(peft, tokenizer)
    assert engine._cohort_key("dora") == "dora" and engine._cohort_key(BASE_MODEL) == MIXED
    prompts = text_prompts(tokenizer, TEXTS[:2])
    expected = hf_greedy(peft, prompts[1], 4)
    got = engine.generate(prompts, SamplingParams(max_tokens=4), adapters=[BASE_MODEL, "dora"])
    assert got[1].token_ids == expected and got[0].completion_tokens == 4


def test_ignore_eos_runs_to_max_tokens_where_the_tokenizer_would_stop():
    model, tokenizer = lively_model()
    no_eos(model)
    prompt = text_prompts(tokenizer, TEXTS[:1])[0]
    first = hf_greedy(model, prompt, 1)[0]
    tokenizer.eos_token_id = first  # the tokenizer's end-of-sequence is the first greedy token
    engine = Engine(model, tokenizer)
    stopped, ran = engine.generate([prompt, prompt], [SamplingParams(max_tokens=6),
                                                     SamplingParams(max_tokens=6, ignore_eos=True)])
    assert stopped.completion_tokens <= 1 and stopped.finish_reason == "stop"
    assert ran.token_ids == hf_greedy(model, prompt, 6) and ran.finish_reason == "length"
