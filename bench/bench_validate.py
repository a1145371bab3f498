"""Validation throughput (examples/s) and peak memory on a generated chat JSONL file.

    .venv/bin/python bench/bench_validate.py --n 100000

Each measurement runs in a fresh child process so its peak RSS (ru_maxrss) is its own:
  * `validate`            — `validate_file` without a tokenizer (schema, content, duplicates, near duplicates)
  * `validate+tokenizer`  — the same plus chat-template token counts with SmolLM2's tokenizer (tiny-random)
  * `load-all`            — the cookbook's approach for comparison: json.loads every line into one list
  * `baseline`            — the interpreter with the same imports, doing nothing (what the rest is above)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

MODES = ("baseline", "load-all", "validate", "validate+tokenizer")


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Varied single- and multi-turn chat examples (~100 words each), a few percent duplicates."""
    rng = random.Random(seed)
    vocab = english_words()
    system = {"role": "system", "content": "You are a helpful assistant for a hardware store."}
    with open(path, "w", encoding="utf-8") as f:
        previous: list[str] = []
        for i in range(n):
            if previous and rng.random() < 0.02:
                f.write(rng.choice(previous))  # an exact duplicate
                continue
            turns = [system]
            for _ in range(rng.choice((1, 1, 1, 2))):
                turns.append({"role": "user", "content": " ".join(rng.choices(vocab, k=rng.randint(8, 30))) + "?"})
                answer = " ".join(rng.choices(vocab, k=rng.randint(20, 90))) + "."
                turns.append({"role": "assistant", "content": answer})
            line = json.dumps({"messages": turns}) + "\n"
            f.write(line)
            if i % 100 == 0:
                previous.append(line)


def english_words() -> list[str]:
    """A fixed English vocabulary (words of the standard library's docstrings), so token counts look real."""
    words: set[str] = set()
    for module in sorted(Path(os.__file__).parent.glob("*.py"))[:80]:
        words.update(re.findall(r"\b[a-z]{3,12}\b", module.read_text(encoding="utf-8", errors="ignore")))
    return sorted(words)


def run_mode(mode: str, path: Path) -> dict:
    """Run in this process (the child): measure one mode."""
    from tunesmith.data.validate import validate_file

    tokenizer = None
    if mode == "validate+tokenizer":
        from tunesmith.models import load_model

        tokenizer = load_model("tiny-random", load_weights=False).tokenizer
    start = time.perf_counter()
    n, issues = 0, 0
    if mode == "load-all":
        with open(path, encoding="utf-8") as f:
            examples = [json.loads(line) for line in f]
        n = len(examples)
    elif mode.startswith("validate"):
        report = validate_file(path, tokenizer=tokenizer, context_length=2048 if tokenizer else None)
        n, issues = report.n_examples, sum(report.counts.values())
    elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "n": n, "seconds": round(elapsed, 2),
            "examples_per_s": round(n / elapsed) if n and elapsed else None,
            "peak_rss_mb": round(peak_kb / 1024, 1), "issues": issues}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="examples in the generated file")
    parser.add_argument("--file", type=Path, default=None, help="use this file instead of generating one")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.file)))
        return
    path = args.file or Path(f"/tmp/tunesmith-bench-{args.n}.jsonl")
    if args.file is None and not path.exists():
        generate(path, args.n)
    print(f"file {path}: {path.stat().st_size / 1e6:.1f} MB, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    results = []
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--file", str(path)], env=env,
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['mode']:<20} {r['n']:>8,} examples  {r['seconds']:>7.2f} s  "
              f"{r['examples_per_s'] or 0:>8,} examples/s  peak RSS {r['peak_rss_mb']:>7.1f} MB", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
