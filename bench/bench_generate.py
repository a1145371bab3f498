"""Batched generation vs one-at-a-time `model.generate` on CPU.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generate.py [--n 64] [--max-new-tokens 32]

Both sides: the same model (SmolLM2-135M-Instruct by default), the same chat-templated prompts, greedy decoding,
stop at EOS, KV cache. The baseline calls `model.generate` once per prompt, as a plain loop would; ours is
`tunesmith.evaluate.predict.generate` (length-sorted, left-padded batches). Prints examples/s for each, the
speed-up and how many outputs agree word for word (fp32 padding can flip a near-tie, so not always 100%).

With --shared-prefix it instead measures prefix caching: every prompt carries the query-language example's
zero-shot system prompt (its whole reference and schema, ~1,800 tokens) before a test question, and
`generate` runs once with `prefix_cache=False` (every row prefills the reference) and once with the default
(the reference is prefilled once and its KV cache copied into each batch):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generate.py --shared-prefix --n 24 \
        --max-new-tokens 48 --batch-size 8

Wall time suffers when other processes share the CPU, so CPU seconds of this process are reported too: with
one thread (OMP_NUM_THREADS=1) they measure the work done and are the fairer figure on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from tunesmith.evaluate.predict import cacheable_prefix_len, encode_prompt, generate
from tunesmith.models import load_model

ROOT = Path(__file__).resolve().parents[1]

SUBJECTS = ["the moon", "photosynthesis", "a binary search", "the French revolution", "rainbows", "SQL joins",
            "volcanoes", "compound interest"]
ASKS = ["In one sentence, what is {s}?", "Explain {s} to a ten-year-old.", "Give two facts about {s}.",
        "Why does {s} matter? Answer briefly.", "Write a haiku about {s}.", "What is a common misconception about {s}?",
        "List three words related to {s}.", "Summarise {s} in under twenty words, then give one example of it."]


def bench_prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": ASKS[i % len(ASKS)].format(s=SUBJECTS[(i // len(ASKS)) % len(SUBJECTS)])}]
            for i in range(n)]


def shared_prefix_prompts(n: int) -> list[list[dict[str, str]]]:
    """The query-language demo's zero-shot+reference prompts: one long system prompt, n test questions."""
    sys.path.insert(0, str(ROOT))  # examples/ is not an installed package
    from examples.querylang import generate as querylang

    docs = ROOT / "examples" / "querylang" / "docs"
    system = f"{querylang.SYSTEM_PROMPT}\n\n{(docs / 'reference.md').read_text()}\n\n{(docs / 'schema.md').read_text()}"
    test = querylang.generate()["test"][:n]
    return [[{"role": "system", "content": system}, {"role": "user", "content": pair.question}] for pair in test]


def one_at_a_time(model, tokenizer, prompts, max_new_tokens: int) -> list[str]:
    texts = []
    for prompt in prompts:
        ids = torch.tensor([encode_prompt(tokenizer, prompt)])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, temperature=None, top_p=None, top_k=None,
                                 pad_token_id=tokenizer.pad_token_id)
        texts.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return texts


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def compare_prefix_cache(loaded, args) -> dict:
    """The same batched generate with and without the shared-prefix KV cache, on the long-system-prompt prompts."""
    prompts = shared_prefix_prompts(args.n)
    encoded = [encode_prompt(loaded.tokenizer, p) for p in prompts]
    run = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    load_before = os.getloadavg()[0]
    plain, plain_wall, plain_cpu = timed(generate, loaded.model, loaded.tokenizer, prompts, prefix_cache=False, **run)
    cached, cached_wall, cached_cpu = timed(generate, loaded.model, loaded.tokenizer, prompts, **run)
    return {
        "mode": "shared-prefix", "model": args.model, "n": len(prompts), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "load_average_at_start": round(load_before, 1),
        "prompt_tokens_mean": round(sum(map(len, encoded)) / len(encoded), 1),
        "shared_prefix_tokens": cacheable_prefix_len(loaded.model, encoded),
        "no_cache_s": round(plain_wall, 1), "prefix_cache_s": round(cached_wall, 1),
        "no_cache_cpu_s": round(plain_cpu, 1), "prefix_cache_cpu_s": round(cached_cpu, 1),
        "speedup_wall": round(plain_wall / cached_wall, 2),
        "speedup_cpu_time": round(plain_cpu / cached_cpu, 2),
        "identical_outputs": f"{sum(a.text == b.text for a, b in zip(plain, cached))}/{len(prompts)}",
        "identical_token_counts": all((a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)
                                      for a, b in zip(plain, cached)),
        "completion_tokens_mean": round(sum(g.completion_tokens for g in cached) / len(cached), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shared-prefix", action="store_true",
                        help="measure the prefix KV cache on prompts sharing a long system prompt instead")
    args = parser.parse_args()

    loaded = load_model(args.model)
    if args.shared_prefix:
        generate(loaded.model, loaded.tokenizer, bench_prompts(2), max_new_tokens=4)  # warm-up
        print(json.dumps(compare_prefix_cache(loaded, args), indent=2))
        return
    prompts = bench_prompts(args.n)
    generate(loaded.model, loaded.tokenizer, prompts[:2], max_new_tokens=4)  # warm-up: first-call allocations

    load_before = os.getloadavg()[0]
    base_texts, base_wall, base_cpu = timed(one_at_a_time, loaded.model, loaded.tokenizer, prompts,
                                            args.max_new_tokens)
    ours, ours_wall, ours_cpu = timed(generate, loaded.model, loaded.tokenizer, prompts,
                                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    agree = sum(a.strip() == b.text.strip() for a, b in zip(base_texts, ours))
    result = {
        "model": args.model, "n": args.n, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "load_average_at_start": round(load_before, 1),
        "one_at_a_time_examples_per_s": round(args.n / base_wall, 3),
        "batched_examples_per_s": round(args.n / ours_wall, 3),
        "speedup_wall": round(base_wall / ours_wall, 2),
        "one_at_a_time_examples_per_cpu_s": round(args.n / base_cpu, 3),
        "batched_examples_per_cpu_s": round(args.n / ours_cpu, 3),
        "speedup_cpu_time": round(base_cpu / ours_cpu, 2),
        "identical_outputs": f"{agree}/{args.n}",
        "completion_tokens_mean": round(sum(g.completion_tokens for g in ours) / args.n, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
