"""What the assessment reads: training data files and evaluation directories, as other areas wrote them.

Eval directories are read from their files (`summary.json`, `predictions.jsonl`, as docs/architecture.md
describes them), so the assessment works on any eval run, including ones made by another tunesmith version.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.conversation import Conversation


class EvidenceError(Exception):
    """A file the assessment needs is missing or malformed; the message names the file, line and field."""


@dataclass
class GraderScore:
    mean: float
    pass_rate: float | None
    ci95: tuple[float, float] | None
    n: int
    threshold: float | None = None  # the score at which an item passes, when the eval recorded it


@dataclass
class EvalRun:
    """One evaluation directory: a model + strategy scored on a data file."""

    path: Path
    model: str
    strategy: str
    data: str | None
    n: int
    graders: dict[str, GraderScore]
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None

    @property
    def kind(self) -> str:
        """"rag" or "prompting": which of Azure's two recommended baselines this run is."""
        return "rag" if "rag" in self.strategy.lower() else "prompting"

    @property
    def label(self) -> str:
        return f"{self.strategy} ({self.model})"


@dataclass
class Prediction:
    id: str
    prompt: str  # the last user message: what similarity to training data is measured on
    reference: str | None
    output: str
    scores: dict[str, float] = field(default_factory=dict)
    passed: dict[str, bool] = field(default_factory=dict)


def read_eval_run(path: Path) -> EvalRun:
    """Read `summary.json` of an eval directory."""
    summary_path = Path(path) / "summary.json"
    if not summary_path.is_file():
        raise EvidenceError(f"{path}: not an eval directory (no summary.json); run `tunesmith eval` to make one")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EvidenceError(f"{summary_path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    for key in ("model", "strategy", "graders"):
        if key not in summary:
            raise EvidenceError(f"{summary_path}: field {key!r} missing")
    graders = {}
    for name, g in summary["graders"].items():
        if not isinstance(g, dict) or "mean" not in g:
            raise EvidenceError(f"{summary_path}: field graders.{name}.mean missing")
        if g["mean"] is None:  # an eval of zero items scores nothing
            continue
        ci = g.get("ci95")
        graders[name] = GraderScore(
            mean=float(g["mean"]),
            pass_rate=_float_or_none(g.get("pass_rate")),
            ci95=(float(ci[0]), float(ci[1])) if ci else None,
            n=int(g.get("n", summary.get("n", 0))),
            threshold=_float_or_none(g.get("threshold")),
        )
    return EvalRun(
        path=Path(path),
        model=str(summary["model"]),
        strategy=str(summary["strategy"]),
        data=summary.get("data"),
        n=int(summary.get("n", 0)),
        graders=graders,
        prompt_tokens_mean=_float_or_none(summary.get("prompt_tokens_mean")),
        completion_tokens_mean=_float_or_none(summary.get("completion_tokens_mean")),
    )


def read_predictions(path: Path) -> list[Prediction]:
    """Read `predictions.jsonl` of an eval directory; an absent file gives an empty list."""
    pred_path = Path(path) / "predictions.jsonl"
    if not pred_path.is_file():
        return []
    out = []
    for line_no, line in enumerate(pred_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvidenceError(f"{pred_path}: line {line_no}: invalid JSON ({e.msg})") from e
        if "scores" not in item:
            raise EvidenceError(f"{pred_path}: line {line_no}: field 'scores' missing")
        messages = item.get("messages") or []
        out.append(Prediction(
            id=str(item.get("id", line_no)),
            prompt=_last_user_text([m for m in messages if isinstance(m, dict)]),
            reference=item.get("reference"),
            output=str(item.get("output", "")),
            scores={k: float(v) for k, v in item["scores"].items() if v is not None},
            passed={k: bool(v) for k, v in (item.get("passed") or {}).items()},
        ))
    return out


def load_numbered_conversations(path: Path) -> list[tuple[int, Conversation]]:
    """`(line, Conversation)` for every example of a data file, in any format tunesmith reads.

    Raises the data area's DataError (file, line, field) at the first unreadable record."""
    from tunesmith.data.formats import iter_numbered_conversations

    return list(iter_numbered_conversations(path))


def data_format(path: Path) -> str:
    """'chat' or 'completion': what shape of data the file holds (Alpaca, ShareGPT, CSV read as chat)."""
    from tunesmith.data.formats import detect_format

    return "completion" if detect_format(path) == "prompt-completion" else "chat"


def prompt_text(conversation: Conversation) -> str:
    """The last user message before the answer: what a baseline failure is matched against."""
    return _last_user_text([m.to_openai() for m in conversation.prompt_messages()])


def text_similarity(a: str, b: str) -> float:
    """Cosine similarity of word unigram+bigram counts, 0..1: cheap, deterministic, good at near-copies."""
    va, vb = _ngram_counts(a), _ngram_counts(b)
    if not va or not vb:
        return 0.0
    dot = sum(c * vb[g] for g, c in va.items() if g in vb)
    return dot / math.sqrt(sum(c * c for c in va.values()) * sum(c * c for c in vb.values()))


def _ngram_counts(text: str) -> Counter:
    words = re.findall(r"\w+", text.lower())
    return Counter(words) + Counter(zip(words, words[1:]))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
