"""N concurrent chat clients against a live tunesmith server: one request at a time vs batched.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_serve.py --clients 8 --max-tokens 32

One server, one loaded model; the same N requests (different questions, greedy, `max_tokens` each) are sent
at once from N threads through the openai SDK, first with batching off (`max_batch` 1: each request holds the
model in turn, as before batching existed), then with it on. Prints wall time, requests/s, the ratio, the batch
sizes the scheduler ran and how many replies were identical across the two runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from tests.server.live_server import QUESTIONS, serving  # noqa: E402
from tunesmith.server.app import create_app  # noqa: E402
from tunesmith.server.state import ServerSettings  # noqa: E402


def run_clients(client: openai.OpenAI, model: str, n: int, max_tokens: int) -> tuple[float, list[str], int]:
    """(wall seconds, reply texts, completion tokens) of n simultaneous requests."""

    def ask(i: int) -> tuple[str, int]:
        reply = client.chat.completions.create(
            model=model, temperature=0, max_tokens=max_tokens,
            messages=[{"role": "user", "content": f"Tell me about the {QUESTIONS[i % len(QUESTIONS)]}."}])
        return reply.choices[0].message.content or "", reply.usage.completion_tokens

    started = time.perf_counter()
    with ThreadPoolExecutor(n) as clients:
        results = list(clients.map(ask, range(n)))
    return time.perf_counter() - started, [r[0] for r in results], sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(ServerSettings(data_dir=Path(data_dir)))
        batcher = app.state.tunesmith.pool.batcher
        with serving(app) as port:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=600)
            batcher.max_batch = 1
            run_clients(client, args.model, 1, 4)  # load the model outside the timings
            runs = {}
            for name, max_batch in (("sequential", 1), ("batched", args.max_batch)):
                batcher.max_batch = max_batch
                before = len(batcher.batch_sizes)
                wall, texts, tokens = run_clients(client, args.model, args.clients, args.max_tokens)
                runs[name] = (wall, texts, tokens, batcher.batch_sizes[before:])

    print(f"{args.model}, {args.clients} concurrent clients, greedy, max_tokens {args.max_tokens}")
    for name, (wall, _texts, tokens, sizes) in runs.items():
        print(f"{name:>10}: {wall:7.2f} s wall, {args.clients / wall:6.2f} requests/s, {tokens} completion tokens"
              + (f", batch sizes {sizes}" if sizes else ""))
    same = sum(a == b for a, b in zip(runs["sequential"][1], runs["batched"][1]))
    print(f"speed-up: {runs['sequential'][0] / runs['batched'][0]:.2f}x; identical replies {same}/{args.clients}")


if __name__ == "__main__":
    main()
