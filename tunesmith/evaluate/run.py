"""One evaluation run: model × test file × prompt strategy × graders → an eval directory.

The eval directory (`tunesmith.artifacts.eval_dir` writes and reads it) holds `predictions.jsonl` (one line
per test item) and `summary.json` (per-grader mean, pass rate, 95% interval: Wilson for pass/fail graders,
bootstrap for scores). By default it lands under `<data dir>/evals/`, where the studio lists it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from tunesmith.artifacts.eval_dir import default_eval_dir, number_repeats, question_key, write_eval_dir
from tunesmith.baselines.strategy import Strategy, parse_strategy
from tunesmith.conversation import Conversation
from tunesmith.evaluate.graders import Grader, parse_grader
from tunesmith.evaluate.pairing import grader_target
from tunesmith.generation import generate
from tunesmith.evaluate.significance import bootstrap_mean_ci, wilson_ci


@dataclass
class ItemResult:
    id: str
    messages: list[dict[str, Any]]  # what the model was sent, after the strategy built the prompt
    reference: str | None
    output: str
    scores: dict[str, float]
    details: dict[str, str]
    passed: dict[str, bool]
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    key: str | None = None  # the pairing key: what the item asks and expects (eval_dir.question_key)


@dataclass
class EvalResult:
    output_dir: Path
    summary: dict[str, Any]
    items: list[ItemResult] = field(default_factory=list)


def evaluate(
    model_ref: str,
    data_path: str | Path,
    graders: Sequence[str | Grader],
    *,
    strategy: str = "zero-shot",
    output_dir: str | Path | None = None,
    system_prompt: str | None = None,
    pool_path: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    loaded: Any = None,
    on_progress: Callable[[int, int], None] | None = None,
    provider: str | None = None,
    engine: str = "tunesmith",
) -> EvalResult:
    """Generate an answer for every test item, grade it with every grader, write the eval directory.

    `loaded` (a `LoadedModel`) skips loading `model_ref` again when the caller already holds the model.
    `provider` (a configured provider's name) generates through its chat completions instead: `model_ref` is
    then the provider's model id (`ft:gpt-35-turbo-0125:…`) or, on Azure, a deployment name.
    `engine` "vllm" hands local generation to vLLM (generation/vllm.py: GPUs only); "tunesmith" is our engine.
    """
    graders = [g if isinstance(g, Grader) else parse_grader(g) for g in graders]
    if not graders:
        raise ValueError("no grader given: pass at least one, e.g. --grader exact")
    conversations = load_conversations(Path(data_path))[:limit]
    pool = load_conversations(Path(pool_path)) if pool_path else None
    built = parse_strategy(strategy, system_prompt=system_prompt, pool=pool)
    if engine not in ("tunesmith", "vllm"):
        raise ValueError(f"unknown engine {engine!r}: use 'tunesmith' or 'vllm'")
    if loaded is None and provider is None:
        from tunesmith.models import load_model

        loaded = load_model(model_ref, load_weights=engine != "vllm")
    prompts = [built.build_messages(c) for c in conversations]
    started = time.perf_counter()
    if provider is not None:
        from tunesmith.generation.remote import generate_remote

        generations = generate_remote(provider, model_ref, prompts, max_new_tokens=max_new_tokens, stop=stop,
                                      temperature=temperature, batch_size=batch_size, on_progress=on_progress)
    elif engine == "vllm":
        from tunesmith.generation.vllm import generate_vllm

        generations = generate_vllm(model_ref, loaded.tokenizer, prompts, max_new_tokens=max_new_tokens, stop=stop,
                                    temperature=temperature, on_progress=on_progress)
    else:
        generations = generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=max_new_tokens, stop=stop,
                               temperature=temperature, batch_size=batch_size, on_progress=on_progress)
    elapsed = time.perf_counter() - started
    items = []
    for item_id, key, conv, prompt, gen in zip(item_ids(conversations), item_keys(conversations), conversations,
                                               prompts, generations):
        items.append(grade_item(item_id, conv, [m.to_openai() for m in prompt], gen, graders, key))
    out = Path(output_dir) if output_dir else default_eval_dir(model_ref, Path(data_path), strategy)
    summary = summarize(items, graders, model=model_ref, strategy=built, data=Path(data_path),
                        examples_per_s=len(items) / elapsed if elapsed > 0 else 0.0)
    write_eval_dir(out, items, summary)
    return EvalResult(out, summary, items)


def grade_item(item_id: str, conv: Conversation, prompt: list[dict[str, Any]], gen: Any,
               graders: Sequence[Grader], key: str | None = None) -> ItemResult:
    reference = conv.reference()
    scores, details, passed = {}, {}, {}
    for grader in graders:
        score = grader.score(gen.text, reference)
        scores[grader.name], details[grader.name] = score.value, score.detail
        passed[grader.name] = grader.passed(score.value)
    return ItemResult(item_id, prompt, reference, gen.text, scores, details, passed, round(gen.latency_s, 4),
                      gen.prompt_tokens, gen.completion_tokens, gen.finish_reason, key)


def item_ids(conversations: Sequence[Conversation]) -> list[str]:
    """Content-derived ids of whole conversations (system prompt included), stable under --limit or a reorder.

    A repeated item gets `-2`, `-3`, … in order of appearance.
    """
    return number_repeats([hashlib.sha256(json.dumps(c.to_openai(), sort_keys=True).encode()).hexdigest()[:12]
                           for c in conversations])


def item_keys(conversations: Sequence[Conversation]) -> list[str]:
    """Pairing keys: what each item asks and expects, whatever its system prompt (`compare` pairs by them)."""
    return number_repeats([question_key([m.to_openai() for m in c.prompt_messages()], c.reference())
                           for c in conversations])


def summarize(items: Sequence[ItemResult], graders: Sequence[Grader], *, model: str, strategy: Strategy,
              data: Path, examples_per_s: float) -> dict[str, Any]:
    per_grader = {}
    for grader in graders:
        values = [it.scores[grader.name] for it in items]
        n = len(values)
        # pass/fail scores: Wilson interval (honest at 0% and 100%); continuous scores: bootstrap of the mean
        lo, hi = wilson_ci(int(sum(values)), n) if grader.binary else bootstrap_mean_ci(values)
        per_grader[grader.name] = {
            "mean": sum(values) / n if n else None,
            "pass_rate": sum(it.passed[grader.name] for it in items) / n if n else None,
            "ci95": [lo, hi] if n else None,
            "n": n,
            "binary": grader.binary,
            "threshold": grader.threshold,
            "target": grader_target(grader.name),
        }
    n = len(items)
    return {
        "model": model,
        "strategy": strategy.spec,
        "data": str(data),
        "n": n,
        "graders": per_grader,
        "prompt_tokens_mean": sum(it.prompt_tokens for it in items) / n if n else None,
        "completion_tokens_mean": sum(it.completion_tokens for it in items) / n if n else None,
        "latency_s_mean": sum(it.latency_s for it in items) / n if n else None,
        "examples_per_s": examples_per_s,
        "strategy_notes": strategy.notes,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def load_conversations(path: Path) -> list[Conversation]:
    """Any format the data module reads (chat JSONL, prompt/completion, CSV, …), as Conversations."""
    from tunesmith.data.formats import read_conversations

    return read_conversations(path)
