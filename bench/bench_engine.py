"""The generation engine against per-batch `model.generate` (tunesmith's path before the engine) and one-at-a-time
`model.generate`, on an eval-like workload with mixed answer lengths; plus the machine's compute bound, head-of-
line waiting and streaming speed.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_engine.py [--n 48] [--batch-size 16] [--json]

Workload: n chat prompts; prompt i must answer exactly L_i tokens, L_i in 5..200, log-uniform by default (an eval
set's mix: most answers short, a few long; `--spread uniform` for an even spread). EOS is switched off so every side
produces the same useful tokens; past a reply's natural end the text is the model's babble, full of near-ties, so
the agreement columns also give how far each side's tokens match one-at-a-time generation before they part. Greedy on every side, and every side's tokens are checked equal.
- per-batch generate: prompts sorted by length, batches of --batch-size, `model.generate(max_new_tokens=max L in
  the batch)`: a batch runs until its longest row ends (what predict.generate did).
- one-at-a-time generate: `model.generate` per prompt with its own L_i (a subset: --solo-n prompts; it is a rate).
- engine: `tunesmith.generation.Engine.generate`, rows joining and leaving at every step.
Compute bound: the time of one decode forward at the engine's batch size over a KV cache as long as the
workload's mean context, repeated; bound tokens/s = batch / step time. fraction_of_bound = engine / bound.
Head-of-line: with the engine running in its thread, a 4-token request submitted while a 2,000-token one is
decoding, against the same request alone. Streaming: tokens/s of one streamed 200-token reply through the
engine against one-at-a-time generate for the same reply.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

import torch

from tunesmith.generation import Engine, SamplingParams, configure_threads, encode_prompt
from tunesmith.models import load_model

SUBJECTS = ["the moon", "photosynthesis", "a binary search", "the French revolution", "rainbows", "SQL joins",
            "volcanoes", "compound interest"]
ASKS = ["In one sentence, what is {s}?", "Explain {s} to a ten-year-old.", "Give two facts about {s}.",
        "Why does {s} matter? Answer briefly.", "Write a haiku about {s}.", "List three words related to {s}."]


def workload(tokenizer, n: int, spread: str) -> tuple[list[list[int]], list[int]]:
    """n prompts and their answer lengths in 5..200: "uniform" spreads them evenly; "long-tail" is log-uniform, as
    an eval set's answers are (most stop after a few words, a few run long)."""
    prompts = [encode_prompt(tokenizer, [{"role": "user", "content": ASKS[i % len(ASKS)].format(
        s=SUBJECTS[(i // len(ASKS)) % len(SUBJECTS)])}]) for i in range(n)]
    fractions = [((i * 37) % n) / max(1, n - 1) for i in range(n)]  # a fixed shuffle of 0..1, no order to exploit
    if spread == "uniform":
        lengths = [round(5 + 195 * f) for f in fractions]
    else:
        lengths = [round(5 * 40 ** f) for f in fractions]
    return prompts, lengths


def same_prefix(a: list[int], b: list[int]) -> float:
    """The share of a's tokens before the first one b differs on."""
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return n / max(1, len(a))


def hf_generate(model, batch: list[list[int]], new_tokens: int) -> list[list[int]]:
    width = max(len(p) for p in batch)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in batch])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return [row[width:].tolist() for row in out]


def per_batch(model, prompts, lengths, batch_size) -> tuple[float, list[list[int]]]:
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list = [None] * len(prompts)
    started = time.perf_counter()
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        for i, tokens in zip(rows, hf_generate(model, [prompts[i] for i in rows], max(lengths[i] for i in rows))):
            out[i] = tokens[: lengths[i]]
    return time.perf_counter() - started, out


def one_at_a_time(model, prompts, lengths) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    out = [hf_generate(model, [p], n)[0] for p, n in zip(prompts, lengths)]
    return time.perf_counter() - started, out


def engine_run(model, tokenizer, prompts, lengths, batch_size) -> tuple[float, list[list[int]], Engine]:
    engine = Engine(model, tokenizer, max_batch=batch_size)
    started = time.perf_counter()
    got = engine.generate(prompts, [SamplingParams(max_tokens=n, ignore_eos=True) for n in lengths])
    out = [g.token_ids for g in got]
    assert [len(t) for t in out] == list(lengths), "the engine must answer exactly L_i tokens, as generate does"
    return time.perf_counter() - started, out, engine


def compute_bound(model, batch: int, context: int, repeats: int = 20) -> float:
    """Seconds of one decode forward at `batch` rows over a `context`-long cache (best of `repeats`)."""
    from tunesmith.generation.kv import new_cache  # the engine's own cache layers, growing in place

    with torch.inference_mode():
        cache = new_cache()
        ids = torch.randint(100, 1000, (batch, context))
        model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        length = cache.get_seq_length()
        best = float("inf")
        for _ in range(repeats):
            for layer in cache.layers:  # back to `context` positions: the buffer's view, no copy
                layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]
            started = time.perf_counter()
            model(input_ids=ids[:, -1:], cache=cache, use_cache=True, logits_to_keep=1)
            best = min(best, time.perf_counter() - started)
    return best


def head_of_line(model, tokenizer, prompt: list[int]) -> tuple[float, float]:
    engine = Engine(model, tokenizer)
    engine.start()
    started = time.perf_counter()
    engine.submit(prompt, SamplingParams(max_tokens=4, ignore_eos=True)).result()
    alone = time.perf_counter() - started
    long = engine.submit(prompt, SamplingParams(max_tokens=2000, ignore_eos=True), stream=True)
    pieces = long.stream()
    for _ in range(20):  # the long one is well into its decoding
        next(pieces)
    started = time.perf_counter()
    engine.submit(prompt, SamplingParams(max_tokens=4, ignore_eos=True)).result()
    behind = time.perf_counter() - started
    pieces.close()
    return behind, alone


def streaming(model, tokenizer, prompt: list[int], tokens: int = 200) -> tuple[float, float]:
    engine = Engine(model, tokenizer)
    engine.start()
    started = time.perf_counter()
    job = engine.submit(prompt, SamplingParams(max_tokens=tokens, ignore_eos=True), stream=True)
    for _ in job.stream():
        pass
    streamed = job.result().completion_tokens / (time.perf_counter() - started)
    started = time.perf_counter()
    hf_generate(model, [prompt], tokens)
    return streamed, tokens / (time.perf_counter() - started)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        flags = next((line for line in out.splitlines() if line.startswith("Flags")), "")
        extras = [f for f in ("avx512f", "amx_tile", "avx512_bf16") if f" {f}" in flags]
        return f"{name} ({', '.join(extras) or 'no AVX-512/AMX'})"
    except (OSError, StopIteration):
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--solo-n", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--spread", choices=["long-tail", "uniform"], default="long-tail")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threads = configure_threads()
    loaded = load_model(args.model)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    model.generation_config.eos_token_id = None  # every side answers exactly its L_i tokens
    prompts, lengths = workload(tokenizer, args.n, args.spread)
    useful = sum(lengths)
    engine_s, engine_out, engine = engine_run(model, tokenizer, prompts, lengths, args.batch_size)
    batch_s, batch_out = per_batch(model, prompts, lengths, args.batch_size)
    solo_s, solo_out = one_at_a_time(model, prompts[: args.solo_n], lengths[: args.solo_n])
    context = int(sum(len(p) + n / 2 for p, n in zip(prompts, lengths)) / len(prompts))
    step_s = compute_bound(model, args.batch_size, context)
    hol_wait, hol_alone = head_of_line(model, tokenizer, prompts[0])
    stream_tps, solo_tps = streaming(model, tokenizer, prompts[1])
    result = {
        "model": args.model, "cpu": cpu_model(), "threads": threads, "n": args.n, "batch_size": args.batch_size,
        "spread": args.spread, "mean_answer_tokens": sum(lengths) / len(lengths),
        "useful_tokens": useful,
        "useful_tokens_per_s": useful / engine_s,
        "per_batch_generate_tokens_per_s": useful / batch_s,
        "one_at_a_time_tokens_per_s": sum(lengths[: args.solo_n]) / solo_s,
        "speedup_vs_generate": batch_s / engine_s,
        "speedup_vs_one_at_a_time": (useful / engine_s) / (sum(lengths[: args.solo_n]) / solo_s),
        "bound_tokens_per_s": args.batch_size / step_s, "bound_context": context,
        "fraction_of_bound": (useful / engine_s) / (args.batch_size / step_s),
        "mean_rows_per_step": sum(engine.steps) / len(engine.steps),
        "hol_wait_s": hol_wait, "hol_alone_s": hol_alone,
        "stream_tokens_per_s": stream_tps, "one_at_a_time_stream_tokens_per_s": solo_tps,
        "identical_to_per_batch": sum(a == b for a, b in zip(engine_out, batch_out)),
        "identical_to_one_at_a_time": sum(a == b for a, b in zip(engine_out, solo_out)),
        "per_batch_identical_to_one_at_a_time": sum(a == b for a, b in zip(batch_out, solo_out)),
        "engine_same_prefix_vs_one_at_a_time": sum(map(same_prefix, solo_out, engine_out)) / len(solo_out),
        "per_batch_same_prefix_vs_one_at_a_time": sum(map(same_prefix, solo_out, batch_out)) / len(solo_out),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:36} {value:.3f}" if isinstance(value, float) else f"{key:36} {value}")


if __name__ == "__main__":
    main()
