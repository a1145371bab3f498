"""Concurrent requests share the engine's decode steps, adapters mixed, each row as if it had run alone."""

from __future__ import annotations

import json
import threading
from typing import Callable

import httpx

from tests.server.live_server import serving, wait_for
from tests.server.test_inference import save_random_adapter
from tunesmith.generation import SamplingParams, encode_prompt
from tunesmith.server.inference import ModelPool, ModelTarget

BASE = ModelTarget("tiny-random", "tiny-random")


def alone(pool: ModelPool, target: ModelTarget, prompt: list[int], params: SamplingParams):
    """The request served with nothing else running."""
    return pool.submit(target, prompt, SamplingParams(**vars(params))).result()


def run_concurrently(pool: ModelPool, requests: list[tuple[ModelTarget, list[int], SamplingParams]],
                     client: Callable | None = None) -> list:
    """Submit every request from its own thread while the model is busy, so all of them queue; then free it.

    `client(target, prompt, params)` makes one request (default: a non-streaming one) and returns its result.
    """
    results: list = [None] * len(requests)
    ask = client or (lambda target, prompt, params: pool.submit(target, prompt, params).result())

    def client_thread(i: int) -> None:
        results[i] = ask(*requests[i])

    for target, _, _ in requests:
        pool.tokenizer(target)  # loaded now, so that no client waits for the lock held below
    engine = pool.engine(requests[0][0].base)
    with engine.lock:  # the engine is mid-step: everything that arrives meanwhile joins at the next one
        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        wait_for(lambda: len(engine._waiting) == len(requests), timeout=10, every=0.01, what="all queued")
        engine.steps.clear()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_greedy_requests_over_two_adapters_batch_and_match_running_alone(tmp_path, tiny):
    a, b = save_random_adapter(tmp_path / "a", 1), save_random_adapter(tmp_path / "b", 2)
    with_a, with_b = ModelTarget("ft:a", "tiny-random", a), ModelTarget("ft:b", "tiny-random", b)
    targets = [BASE, BASE, BASE, with_a, with_a, with_b]
    # raw text, not chat prompts: tiny-random answers every chat prompt with the same newlines
    texts = ["The quick brown fox", "Once upon a time, in a", "1 2 3 4", "Paris is the capital of",
             "The quick brown fox", "Once upon a time, in a"]
    prompts = [tiny.tokenizer(t)["input_ids"] for t in texts]
    lengths = [3, 12, 7, 20, 9, 15]
    pool = ModelPool(max_batch=16)
    params = [SamplingParams(max_tokens=n, temperature=0) for n in lengths]
    single = [alone(pool, t, p, s) for t, p, s in zip(targets, prompts, params)]
    assert len({g.text for g in single}) == len(single)  # every model and prompt answers differently
    words = single[3].text.split()
    stop = next(w for w in words if w != words[0])  # a word the row meets only after some tokens
    params[3].stop = [stop]
    single[3] = alone(pool, targets[3], prompts[3], params[3])
    assert single[3].finish_reason == "stop" and single[3].text and single[3].completion_tokens < lengths[3]

    batched = run_concurrently(pool, list(zip(targets, prompts, params)))

    assert pool.engine("tiny-random").steps[0] == 6  # one decode step, base and two adapters mixed
    for one, together in zip(single, batched):
        assert (together.text, together.finish_reason) == (one.text, one.finish_reason)
        assert (together.prompt_tokens, together.completion_tokens) == (one.prompt_tokens, one.completion_tokens)
    assert [g.completion_tokens for g in batched if g.finish_reason == "length"] == [n for n, g in
                                                                                    zip(lengths, single)
                                                                                    if g.finish_reason == "length"]


def test_concurrent_streams_match_completions_and_one_that_is_abandoned_frees_its_row(tmp_path, tiny):
    a, b = save_random_adapter(tmp_path / "a", 1), save_random_adapter(tmp_path / "b", 2)
    with_a, with_b = ModelTarget("ft:a", "tiny-random", a), ModelTarget("ft:b", "tiny-random", b)
    prompts = [tiny.tokenizer(t)["input_ids"] for t in ["Once upon a time, in a", "Paris is the capital of",
                                                         "The quick brown fox", "1 2 3 4"]]
    pool = ModelPool(max_batch=16)
    requests = [(BASE, prompts[0], SamplingParams(12, 0)), (with_a, prompts[1], SamplingParams(20, 0)),
                (with_b, prompts[2], SamplingParams(15, 0)), (BASE, prompts[3], SamplingParams(1900, 0))]
    words = alone(pool, *requests[1]).text.split()
    requests[1][2].stop = [next(w for w in words if w != words[0])]
    single = [alone(pool, *r) for r in requests[:3]]
    def stream(target: ModelTarget, prompt: list[int], params: SamplingParams) -> tuple[str, str | None]:
        job = pool.submit(target, prompt, params, stream=True)
        pieces = job.stream()
        if params.max_tokens >= 1900:  # the client reads a little, then goes away
            first = next(pieces)
            pieces.close()
            return first, None
        return "".join(pieces), job.result().finish_reason

    streamed = run_concurrently(pool, requests, stream)

    engine = pool.engine("tiny-random")
    assert engine.steps[0] == 4
    for one, (text, finish_reason) in zip(single, streamed):
        assert (text, finish_reason) == (one.text, one.finish_reason)
    assert single[1].finish_reason == "stop"
    # generating its 1900 tokens for nobody takes over 6 s here; its row left with its client
    wait_for(lambda: not engine.busy(), timeout=3, every=0.01, what="the abandoned row to leave")
    assert len(engine.steps) < 100


def test_greedy_sampled_and_seeded_rows_share_a_step(tiny):
    pool = ModelPool(max_batch=16)
    prompt = encode_prompt(tiny.tokenizer, [{"role": "user", "content": "Hi"}])
    seeded = SamplingParams(4, 0.9, seed=5)
    requests = [(BASE, prompt, SamplingParams(4, 0)), (BASE, prompt, SamplingParams(4, 0.7)),
                (BASE, prompt, SamplingParams(4, 0)), (BASE, prompt, seeded)]
    results = run_concurrently(pool, requests)
    assert pool.engine("tiny-random").steps[0] == 4  # each row samples its own way within one step
    assert results[0].text == results[2].text and all(r.completion_tokens <= 4 for r in results)
    assert results[3].token_ids == alone(pool, BASE, prompt, seeded).token_ids  # its own generator, its own seed


def test_server_batches_concurrent_completions_streams_and_seeded_requests(tmp_path):
    from tunesmith.server.app import create_app
    from tunesmith.server.settings import ServerSettings

    app = create_app(ServerSettings(data_dir=tmp_path))
    pool = app.state.tunesmith.pool
    questions = ["Hi", "Name a colour", "What is 2+2?", "Say something"]
    with serving(app) as port:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"

        def ask(q: str, **extra) -> dict:
            body = {"model": "tiny-random", "messages": [{"role": "user", "content": q}], "temperature": 0,
                    "max_tokens": 10, **extra}
            reply = httpx.post(url, json=body, timeout=60)
            assert reply.status_code == 200, reply.text
            return reply.json()

        def stream(q: str) -> str:
            body = {"model": "tiny-random", "messages": [{"role": "user", "content": q}], "temperature": 0,
                    "max_tokens": 10, "stream": True}
            text = ""
            with httpx.stream("POST", url, json=body, timeout=60) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:])["choices"]:
                            text += choice["delta"].get("content") or ""
            return text

        alone_replies = [ask(q) for q in questions]
        engine = pool.engine("tiny-random")
        assert set(engine.steps) == {1}
        engine.steps.clear()
        together: list = [None] * len(questions)
        streamed: list = [None] * 3
        threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(questions[i])))
                   for i in range(len(questions))]
        threads += [threading.Thread(target=lambda i=i: streamed.__setitem__(i, stream(questions[i])))
                    for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert max(engine.steps) >= 2  # some of them did share decode steps
        for one, batched in zip(alone_replies, together):
            assert batched["choices"][0]["message"]["content"] == one["choices"][0]["message"]["content"]
            assert batched["usage"] == one["usage"]
        assert streamed == [r["choices"][0]["message"]["content"] for r in alone_replies[:3]]
        seeded = [ask("Hi", temperature=1.0, seed=5)["choices"][0]["message"]["content"] for _ in range(2)]
        assert seeded[0] == seeded[1]


def test_a_nan_adapter_fails_its_request_alone_and_the_base_model_answers_after(tmp_path, tiny):
    import torch
    from safetensors.torch import load_file, save_file

    bad = save_random_adapter(tmp_path / "nan", 3)
    weights = load_file(str(bad / "adapter_model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) if "lora_B" in k else v for k, v in weights.items()},
              str(bad / "adapter_model.safetensors"))
    pool = ModelPool(max_batch=16)
    poisoned = ModelTarget("ft:nan", "tiny-random", bad)
    prompts = [tiny.tokenizer(t)["input_ids"] for t in ["The quick brown fox", "1 2 3 4", "Paris is"]]
    sampled = SamplingParams(6, 0.8, seed=2)  # sampling from NaN probabilities is what used to raise
    results = run_concurrently(pool, [(BASE, prompts[0], SamplingParams(6, 0)), (poisoned, prompts[1], sampled),
                                      (BASE, prompts[2], SamplingParams(6, 0))],
                               client=lambda t, p, s: _outcome(pool.submit(t, p, s)))
    assert isinstance(results[1], Exception) and "non-finite" in str(results[1])
    assert results[0].completion_tokens == 6 and results[2].completion_tokens == 6
    after = pool.submit(BASE, prompts[0], SamplingParams(6, 0)).result()
    assert after.token_ids == results[0].token_ids


def _outcome(job):
    try:
        return job.result()
    except Exception as e:
        return e
