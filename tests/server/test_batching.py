"""Concurrent requests share one batched generate, adapters mixed, each row as if it had run alone."""

from __future__ import annotations

import json
import threading
from typing import Callable

import httpx

from tests.server.live_server import serving, wait_for
from tests.server.test_inference import save_random_adapter
from tunesmith.evaluate.predict import encode_prompt, generate
from tunesmith.server.inference import ModelPool, ModelTarget, SamplingParams, StreamResult

BASE = ModelTarget("tiny-random", "tiny-random")


def alone(pool: ModelPool, target: ModelTarget, prompt: list[int], params: SamplingParams):
    """The request served as it is without batching: the pool held, predict.generate on one prompt."""
    with pool.use(target) as (model, tokenizer):
        return generate(model, tokenizer, [prompt], max_new_tokens=params.max_tokens, stop=params.stop,
                        temperature=params.temperature, top_p=params.top_p, batch_size=1)[0]


def run_concurrently(pool: ModelPool, requests: list[tuple[ModelTarget, list[int], SamplingParams]],
                     client: Callable | None = None) -> list:
    """Submit every request from its own thread while the model is busy, so all of them queue; then free it.

    `client(target, prompt, params)` makes one request (default: a non-streaming one) and returns its result.
    """
    results: list = [None] * len(requests)
    ask = client or (lambda target, prompt, params: pool.batcher.complete(target, pool.tokenizer(target), prompt,
                                                                            params))

    def client_thread(i: int) -> None:
        results[i] = ask(*requests[i])

    for target, _, _ in requests:
        pool.tokenizer(target)  # loaded now, so that no client waits for the lock held below
    with pool.lock:  # the model is busy: everything that arrives meanwhile should go in one batch
        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        wait_for(lambda: len(pool.batcher._pending) == len(requests), timeout=10, every=0.01, what="all queued")
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

    assert pool.batcher.batch_sizes == [6]  # one generate call, base and two adapters mixed
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
    abandoned = StreamResult()

    def stream(target: ModelTarget, prompt: list[int], params: SamplingParams) -> tuple[str, StreamResult]:
        result = StreamResult() if params.max_tokens < 1900 else abandoned
        pieces = pool.batcher.stream(target, pool.tokenizer(target), prompt, params, result)
        if result is abandoned:  # the client reads a little, then goes away
            first = next(pieces)
            pieces.close()
            return first, result
        return "".join(pieces), result

    streamed = run_concurrently(pool, requests, stream)

    assert pool.batcher.batch_sizes == [4]
    for one, (text, result) in zip(single, streamed):
        assert (text, result.finish_reason) == (one.text, one.finish_reason)
    assert single[1].finish_reason == "stop"
    assert abandoned.finish_reason is None and abandoned.completion_tokens < 100  # its row stopped with the client
    # generating its 1900 tokens for nobody takes over 6 s here; stopping its row ends the batch at once
    wait_for(lambda: not pool.lock.locked(), timeout=3, every=0.01, what="the batch to end")


def test_different_sampling_settings_do_not_share_a_batch(tiny):
    pool = ModelPool(max_batch=16)
    prompt = encode_prompt(tiny.tokenizer, [{"role": "user", "content": "Hi"}])
    requests = [(BASE, prompt, SamplingParams(4, 0)), (BASE, prompt, SamplingParams(4, 0.7)),
                (BASE, prompt, SamplingParams(4, 0))]
    results = run_concurrently(pool, requests)
    assert sorted(pool.batcher.batch_sizes) == [1, 2]  # the two greedy ones together, the sampled one apart
    assert results[0].text == results[2].text and all(r.completion_tokens <= 4 for r in results)


def test_server_batches_concurrent_completions_while_streams_and_seeded_requests_keep_their_path(tmp_path):
    from tunesmith.server.app import create_app
    from tunesmith.server.state import ServerSettings

    app = create_app(ServerSettings(data_dir=tmp_path))
    pool = app.state.tunesmith.pool
    pool.batcher.window_s = 0.3  # generous: the test's clients start within it even on a loaded machine
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
        assert pool.batcher.batch_sizes == [1] * len(questions)
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
        assert max(pool.batcher.batch_sizes[len(questions):]) >= 2  # some of them did share a generate call
        for one, batched in zip(alone_replies, together):
            assert batched["choices"][0]["message"]["content"] == one["choices"][0]["message"]["content"]
            assert batched["usage"] == one["usage"]
        assert streamed == [r["choices"][0]["message"]["content"] for r in alone_replies[:3]]
        seeded = [ask("Hi", temperature=1.0, seed=5)["choices"][0]["message"]["content"] for _ in range(2)]
        assert seeded[0] == seeded[1]
        assert sum(pool.batcher.batch_sizes) == 2 * len(questions) + 3  # seeded requests kept the unbatched path
