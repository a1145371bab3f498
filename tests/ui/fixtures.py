"""Files the studio tests feed the server: a training file with known problems, and two crafted eval runs."""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.evaluate.significance import bootstrap_mean_ci

QUESTIONS = [(f"What is {a} plus {b}?", str(a + b)) for a, b in zip(range(2, 14), range(5, 17))]


def chat_line(user: str, assistant: str, system: str = "You add numbers.") -> str:
    return json.dumps({"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": assistant}]})


def write_training_file(path: Path, n: int = 24) -> Path:
    """`n` valid, distinct chat examples."""
    lines = [chat_line(f"What is {a} plus {2 * a + 1}?", f"{a} plus {2 * a + 1} is {3 * a + 1}.") for a in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_broken_file(path: Path) -> Path:
    """Twelve good examples, then line 13 with an unknown role and line 14 with no assistant reply."""
    lines = [chat_line(*QUESTIONS[i]) for i in range(12)]
    lines.append(json.dumps({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}))
    lines.append(json.dumps({"messages": [{"role": "user", "content": "no answer here"}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_eval_dir(path: Path, model: str, strategy: str, correct: set[int], created_at: str) -> Path:
    """An eval directory as `tunesmith eval` writes it (predictions.jsonl + summary.json) for QUESTIONS,
    answering item i right when i is in `correct` and with a wrong number otherwise."""
    path.mkdir(parents=True, exist_ok=True)
    rows, scores = [], []
    for i, (question, answer) in enumerate(QUESTIONS):
        output = answer if i in correct else str(int(answer) + 7)
        score = 1.0 if i in correct else 0.0
        scores.append(score)
        rows.append({"id": f"q{i:02d}", "messages": [{"role": "user", "content": question}], "reference": answer,
                     "output": output, "scores": {"exact_match": score}, "details": {"exact_match": ""},
                     "latency_s": 0.01, "prompt_tokens": 12, "completion_tokens": 2})
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lo, hi = bootstrap_mean_ci(scores)
    summary = {"model": model, "strategy": strategy, "data": "sums.jsonl", "n": len(rows),
               "graders": {"exact_match": {"mean": sum(scores) / len(scores), "pass_rate": sum(scores) / len(scores),
                                           "ci95": [lo, hi], "n": len(rows)}},
               "prompt_tokens_mean": 12.0, "completion_tokens_mean": 2.0, "created_at": created_at}
    (path / "summary.json").write_text(json.dumps(summary, indent=1))
    return path


def write_eval_pair(evals_root: Path) -> tuple[str, str]:
    """A few-shot baseline right on items 0-3, and a fine-tuned model right on 0-11 except 2:
    eight items fixed (q04..q11), one broken (q02). Returns their eval ids."""
    write_eval_dir(evals_root / "baseline-fewshot", "smollm2-135m-instruct", "few-shot:3", {0, 1, 2, 3},
                   "2026-11-27T01:00:00Z")
    write_eval_dir(evals_root / "finetuned", "ft:smollm2-135m-instruct:sums:abc", "zero-shot",
                   set(range(12)) - {2}, "2026-11-27T02:00:00Z")
    return "baseline-fewshot", "finetuned"
