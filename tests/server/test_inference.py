"""Many LoRA adapters over one base model (LRU-bounded), and streaming's stop-string handling through the pool."""

from __future__ import annotations

import time

import torch
from peft import LoraConfig, get_peft_model

from tunesmith.models import build_tiny_model, load_smollm2_tokenizer
from tunesmith.generation import SamplingParams
from tunesmith.generation.text import RowText
from tunesmith.server.inference import ModelPool, ModelTarget


def save_random_adapter(path, seed: int):
    tokenizer = load_smollm2_tokenizer()
    base = build_tiny_model(tokenizer)  # seeds torch itself: seed the adapter's random weights after it
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(str(path))
    return path


def last_logits(pool: ModelPool, target: ModelTarget) -> torch.Tensor:
    """The target's log-probabilities of its 8 likeliest next tokens, served through the pool's engine."""
    ids = pool.tokenizer(target)("The quick brown fox")["input_ids"]
    first = pool.submit(target, ids, SamplingParams(max_tokens=1, logprobs=8)).result().logprobs[0]
    return torch.tensor([lp for _, lp in first.top] + [float(i) for i, _ in first.top])


def test_adapters_switch_over_one_base_and_least_recently_used_goes(tmp_path):
    a, b = save_random_adapter(tmp_path / "a", 1), save_random_adapter(tmp_path / "b", 2)
    pool = ModelPool(max_adapters=1)
    base = ModelTarget("tiny-random", "tiny-random")
    with_a, with_b = ModelTarget("ft:a", "tiny-random", a), ModelTarget("ft:b", "tiny-random", b)
    plain = last_logits(pool, base)
    logits_a = last_logits(pool, with_a)
    logits_b = last_logits(pool, with_b)
    assert pool.loaded_adapters() == [b]  # bound of 1: loading b dropped a
    assert not torch.allclose(logits_a, logits_b) and not torch.allclose(plain, logits_a)
    assert torch.allclose(last_logits(pool, with_a), logits_a, atol=1e-5)  # reloaded on demand, same weights
    assert torch.allclose(last_logits(pool, base), plain, atol=1e-5)  # the base answers without any adapter
    pool.evict(a)
    assert pool.loaded_adapters() == []


def test_stream_never_sends_a_stop_string_or_half_of_one(tiny):
    pool = ModelPool()
    base = ModelTarget("tiny-random", "tiny-random")
    ids = tiny.tokenizer("hello there")["input_ids"]
    full = "".join(pool.submit(base, ids, SamplingParams(max_tokens=8), stream=True).stream())
    stop = full[3:6]
    job = pool.submit(base, ids, SamplingParams(8, 0, 1.0, [stop]), stream=True)
    pieces = list(job.stream())
    assert "".join(pieces) == full[:full.find(stop)] and job.result().finish_reason == "stop"
    held = RowText(tiny.tokenizer, ["SELECT"], set())
    held.text = "answer: SEL"
    assert held._held_back() == 3 and held.ready() == "answer: "


def test_a_stream_the_client_abandons_gives_the_model_back(tmp_path):
    import httpx

    from tests.server.live_server import serving, wait_for
    from tunesmith.server.app import create_app
    from tunesmith.server.settings import ServerSettings

    app = create_app(ServerSettings(data_dir=tmp_path))
    pool = app.state.tunesmith.pool
    body = {"model": "tiny-random", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0,
            "max_tokens": 1900, "stream": True}  # far more tokens than the wait below allows for
    with serving(app) as port:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            lines = response.iter_lines()
            for _ in range(4):
                next(lines)
            assert pool.engine("tiny-random").busy()  # generating for this client
        started = time.monotonic()
        wait_for(lambda: not pool.engine("tiny-random").busy(), timeout=10, every=0.05,
                 what="the abandoned row to leave the engine")
        reply = httpx.post(url, json={**body, "stream": False, "max_tokens": 4}, timeout=30)
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 4
        assert time.monotonic() - started < 20
