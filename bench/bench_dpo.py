"""DPO on SmolLM2-135M-Instruct on CPU: does the held-out log-probability margin of preferred over
non-preferred answers rise, and how often does the trained model prefer the right one?

The preference set is built here: arithmetic questions whose preferred answer is correct and whose
non-preferred answer is the same sentence with the number corrupted (off by 1-9). 64 training pairs and 32
held-out pairs on other numbers. Margin = log p(preferred) - log p(non-preferred), summed over the answer
tokens, averaged over the held-out pairs; reward accuracy = share of held-out pairs whose implicit reward
(beta x log-ratio to the reference) is higher for the preferred answer.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=$PWD .venv/bin/python bench/bench_dpo.py
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch


def pairs(rng: random.Random, n: int, numbers: range) -> list[dict]:
    out = []
    for _ in range(n):
        a, b = rng.choice(numbers), rng.choice(numbers)
        wrong = a + b + rng.choice([-1, 1]) * rng.randint(1, 9)
        question = f"What is {a} plus {b}? Answer in one sentence."
        out.append({"input": {"messages": [{"role": "user", "content": question}]},
                    "preferred_output": [{"role": "assistant", "content": f"{a} plus {b} is {a + b}."}],
                    "non_preferred_output": [{"role": "assistant", "content": f"{a} plus {b} is {wrong}."}]})
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def held_out_margin(model_ref: str, valid: Path) -> torch.Tensor:
    """[n, 2] summed log-probabilities of (preferred, non-preferred) held-out answers under `model_ref`."""
    from tunesmith.data.preference import read_pairs
    from tunesmith.models import load_model
    from tunesmith.training.adapters import decoder_and_head
    from tunesmith.training.dpo import pair_logps
    from tunesmith.training.render import render_example

    loaded = load_model(model_ref, dtype=torch.float32, device="cpu")
    loaded.model.eval()
    rendered = [(render_example(p.chosen, loaded.tokenizer), render_example(p.rejected, loaded.tokenizer))
                for p in read_pairs(valid)]
    decoder, head = decoder_and_head(loaded.model)
    with torch.no_grad():
        return pair_logps(decoder, head, rendered, 4096, loaded.tokenizer.pad_token_id, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate-multiplier", type=float, default=0.1)
    args = parser.parse_args()
    from tunesmith.train_config import TrainConfig
    from tunesmith.training.launch import start

    torch.set_num_threads(1)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train = write(root / "train.jsonl", pairs(rng, 64, range(10, 60)))
        valid = write(root / "valid.jsonl", pairs(rng, 32, range(60, 99)))
        before = held_out_margin(args.model, valid)
        started = time.perf_counter()
        result = start(TrainConfig(model=args.model, train=train, validation=valid, method="dpo", beta=args.beta,
                                   n_epochs=args.epochs, batch_size=args.batch_size, dtype="float32",
                                   learning_rate_multiplier=args.learning_rate_multiplier, output=root / "run"))
        seconds = time.perf_counter() - started
        after = held_out_margin(str(result.run_dir), valid)
        rows = (root / "run" / "results.csv").read_text().splitlines()
    margin_before = (before[:, 0] - before[:, 1])
    margin_after = (after[:, 0] - after[:, 1])
    rewards = args.beta * ((after[:, 0] - before[:, 0]) - (after[:, 1] - before[:, 1]))
    report = {
        "model": args.model, "train_pairs": 64, "held_out_pairs": 32, "beta": args.beta, "epochs": args.epochs,
        "batch_size": args.batch_size, "learning_rate_multiplier": args.learning_rate_multiplier,
        "steps": result.step, "train_seconds": round(seconds, 1),
        "held_out_margin_before": round(margin_before.mean().item(), 3),
        "held_out_margin_after": round(margin_after.mean().item(), 3),
        "held_out_preferred_more_likely_before": round((margin_before > 0).float().mean().item(), 3),
        "held_out_preferred_more_likely_after": round((margin_after > 0).float().mean().item(), 3),
        "held_out_reward_accuracy": round((rewards > 0).float().mean().item(), 3),
        "held_out_reward_margin": round(rewards.mean().item(), 3),
        "results_csv_last_row": dict(zip(rows[0].split(","), rows[-1].split(","))),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
