"""What the assessment reads: training data files and evaluation directories, as other areas wrote them.

Eval directories are read by their owner, `tunesmith.artifacts.eval_dir` (EvalRun, read_eval_run); here they
become the views the assessment compares with the training data.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.artifacts import eval_dir
from tunesmith.artifacts.eval_dir import NotAnEvalDir
from tunesmith.conversation import Conversation


@dataclass
class Prediction:
    id: str
    key: str  # the pairing key `tunesmith compare` matches items by (evaluate.pairing): same question, same key
    prompt: str  # the last user message: what similarity to training data is measured on
    reference: str | None
    output: str
    scores: dict[str, float] = field(default_factory=dict)
    passed: dict[str, bool] = field(default_factory=dict)


def read_predictions(path: Path) -> list[Prediction]:
    """An eval directory's predictions as the assessment compares them; no predictions.jsonl gives [].

    Each carries the pairing key compare and the studio pair items by (recomputed for old eval dirs), so an
    item named here is the item they name."""
    try:
        items = eval_dir.read_eval_run(path).rows
    except NotAnEvalDir:
        return []
    out = []
    for item in items:
        messages = item.get("messages") or []
        out.append(Prediction(
            id=str(item["id"]),
            key=str(item["key"]),
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


@dataclass
class CurveEvidence:
    """A learning curve (`tunesmith curve`) as the data question quotes it."""

    path: Path
    kind: str  # rising | flat | too noisy
    message: str
    metric: str
    n_test_items: int
    points: list[tuple[int, float]]  # (examples, score) of the fine-tuned model, smallest first
    projection: list[dict[str, Any]]  # {"examples", "score", "low", "high"}: extrapolations
    items_needed: int | None = None
    plot: str | None = None  # curve.png, when the curve drew one

    def summary(self) -> dict[str, Any]:
        """What the assessment (and its report) keeps of the curve."""
        return {"path": str(self.path), "kind": self.kind, "message": self.message, "plot": self.plot}

    def sentence(self) -> str:
        shown = ", ".join(f"{n} examples {s:.0%}" for n, s in self.points)
        return (f"Learning curve on {self.n_test_items} test items ({self.metric}; {self.path}): {shown}. "
                f"Its verdict: {self.message}.")


def read_curve_evidence(path: Path) -> CurveEvidence:
    """curve.json, through its owner (`artifacts.curve_dir`); raises CurveDirError naming the file."""
    from tunesmith.artifacts.curve_dir import CurveDir, read_curve

    curve = read_curve(path)
    plot = CurveDir(path).plot_path
    main = sorted((p for p in curve["points"] if p.get("model") == curve.get("model")), key=lambda p: p["examples"])
    verdict = curve["verdict"]
    return CurveEvidence(Path(path), verdict["kind"], verdict["message"], str(curve.get("metric")),
                         int(curve.get("n_test_items") or 0), [(int(p["examples"]), float(p["score"])) for p in main],
                         list(curve.get("projection") or []), verdict.get("items_needed"),
                         str(plot) if plot.is_file() else None)


def find_curve_for(train: Path, roots: list[Path]) -> Path | None:
    """A curve directory under `roots` (beside the eval dirs given) drawn from this training file, newest first."""
    from tunesmith.artifacts.curve_dir import find_curve_dirs, read_curve

    for path in find_curve_dirs(roots):
        try:
            if Path(read_curve(path).get("train", "")).resolve() == Path(train).resolve():
                return path
        except ValueError:
            continue
    return None
