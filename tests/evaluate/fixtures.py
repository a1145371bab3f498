"""Eval directories written the way `tunesmith eval` writes them, with chosen scores and no model to run.

The prompts come from the real strategy (system prompt, few-shot turns) and the ids and pairing keys from
`evaluate.run`, so only the model's answers are made up: item i is right when i is in `correct`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from tunesmith.artifacts.eval_dir import write_eval_dir
from tunesmith.baselines.strategy import parse_strategy
from tunesmith.conversation import Conversation
from tunesmith.evaluate.run import ItemResult, item_ids, item_keys, load_conversations


def write_questions(path: Path, system: str, n: int = 30, offset: int = 0) -> Path:
    """A test file of `n` sums, every item with the same system prompt."""
    rows = [{"messages": [{"role": "system", "content": system},
                          {"role": "user", "content": f"What is {i} plus {i + 3}?"},
                          {"role": "assistant", "content": str(2 * i + 3)}]} for i in range(offset, offset + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_scored_eval(out: Path, data: Path, correct: set[int], *, model: str = "base-model",
                      strategy: str = "zero-shot", pool: Sequence[Conversation] | None = None,
                      graders: Sequence[str] = ("exact",), keep_keys: bool = True) -> Path:
    """An eval dir of `data`; `keep_keys=False` writes it as eval dirs were written before the pairing key."""
    conversations = load_conversations(data)
    built = parse_strategy(strategy, pool=pool)
    items = []
    for i, (item_id, key, conv) in enumerate(zip(item_ids(conversations), item_keys(conversations), conversations)):
        prompt = [m.to_openai() for m in built.build_messages(conv)]
        ok = i in correct
        tokens = sum(len((m["content"] or "").split()) for m in prompt)  # words stand in for tokens
        items.append(ItemResult(item_id, prompt, conv.reference(), conv.reference() if ok else "0",
                                {g: float(ok) for g in graders}, {g: "" for g in graders}, {g: ok for g in graders},
                                0.01, tokens, 2, "stop", key if keep_keys else None))
    rows = [{k: v for k, v in vars(it).items() if keep_keys or k != "key"} for it in items]
    n = len(rows)
    mean = len(correct & set(range(n))) / n
    summary = {"model": model, "strategy": strategy, "data": str(data), "n": n,
               "graders": {g: {"mean": mean, "pass_rate": mean, "ci95": [0.0, 1.0], "n": n, "binary": True,
                               "threshold": 1.0} for g in graders},
               "prompt_tokens_mean": sum(it.prompt_tokens for it in items) / n, "completion_tokens_mean": 2.0,
               "created_at": "2026-12-03T00:00:00+00:00"}
    write_eval_dir(out, rows, summary)
    return out
