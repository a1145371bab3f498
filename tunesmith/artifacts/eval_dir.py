"""The eval directory: `tunesmith eval` writes it; compare, the readiness assessment and the studio read it.

    <eval dir>/summary.json        {"model", "strategy", "data", "n", "graders": {name: {"mean", "pass_rate",
                                    "ci95": [lo, hi], "n", "binary", "threshold", "target"}}, "prompt_tokens_mean",
                                    "completion_tokens_mean", "latency_s_mean", "examples_per_s",
                                    "strategy_notes", "created_at"}
    <eval dir>/predictions.jsonl   one line per test item: {"id", "key", "messages", "reference", "output",
                                    "scores": {grader: float}, "details": {grader: str}, "passed": {grader: bool},
                                    "latency_s", "prompt_tokens", "completion_tokens", "finish_reason"}

`id` hashes the whole test conversation; `key` (the pairing key) hashes only what the item asks and expects:
its own turns (user turns, tool results, earlier assistant turns) and the reference answer, never a system
prompt nor what a strategy added (few-shot turns, retrieved context), so evals of the same questions prompted
differently pair up. Eval dirs written before `key` existed get it recomputed from their stored messages.
A grader's `target` is what it checked against, resolved when the eval ran (a database or schema file's absolute
path), so compare matches `sql-exec:./geo.sqlite` with `sql-exec:geo.sqlite` (evaluate/pairing.py).

By default an eval lands in `<data dir>/evals/<model>-<data>-<strategy>`, where the studio lists it. This module
is the one writer and the one reader; errors name the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tunesmith.paths import atomic_write_text, data_dir

SUMMARY, PREDICTIONS = "summary.json", "predictions.jsonl"
PAIR_BY = ("question", "id", "line")  # how two evals' items are matched: pairing key, item id, line number
_TURN_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id")  # not `weight`: a training detail


class EvalDirError(ValueError):
    """An eval directory is missing a file or holds a malformed one; the message names the file, line, field."""


class NotAnEvalDir(EvalDirError, FileNotFoundError):
    """The folder has no summary.json (or no predictions.jsonl where they are needed)."""


@dataclass
class GraderScore:
    mean: float
    pass_rate: float | None
    ci95: tuple[float, float] | None
    n: int
    threshold: float | None = None  # the score at which an item passes, when the eval recorded it


@dataclass
class EvalRun:
    """One eval directory: a model + strategy scored on a data file. Predictions are read on first use."""

    path: Path
    summary: dict[str, Any]
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)
    _by: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """predictions.jsonl in file order, each with its pairing `key` (recomputed for old eval dirs)."""
        if self._rows is None:
            self._rows = with_pairing_keys(read_predictions(self.path), self.summary.get("strategy"))
        return self._rows

    @property
    def predictions(self) -> dict[str, dict[str, Any]]:
        """predictions.jsonl by item id."""
        return self.items_by("id")

    def items_by(self, pair_by: str = "question") -> dict[str, dict[str, Any]]:
        """Predictions by what pairs them with another eval's: `key`, `id` or `line N` (see PAIR_BY)."""
        if pair_by not in PAIR_BY:
            raise ValueError(f"unknown pairing {pair_by!r}: use one of {', '.join(PAIR_BY)}")
        if pair_by not in self._by:
            if pair_by == "line":
                self._by[pair_by] = {f"line {n}": p for n, p in enumerate(self.rows, start=1)}
            else:
                self._by[pair_by] = {p["key" if pair_by == "question" else "id"]: p for p in self.rows}
        return self._by[pair_by]

    @property
    def model(self) -> str:
        return str(self.summary["model"])

    @property
    def strategy(self) -> str:
        return str(self.summary["strategy"])

    @property
    def data(self) -> str | None:
        return self.summary.get("data")

    @property
    def n(self) -> int:
        return int(self.summary.get("n", 0))

    @property
    def graders(self) -> dict[str, GraderScore]:
        """The graders that scored something (an eval of zero items scores nothing)."""
        out = {}
        for name, g in self.summary["graders"].items():
            if g["mean"] is None:
                continue
            ci = g.get("ci95")
            out[name] = GraderScore(mean=float(g["mean"]), pass_rate=_float_or_none(g.get("pass_rate")),
                                    ci95=(float(ci[0]), float(ci[1])) if ci else None,
                                    n=int(g.get("n", self.n)), threshold=_float_or_none(g.get("threshold")))
        return out

    @property
    def prompt_tokens_mean(self) -> float | None:
        return _float_or_none(self.summary.get("prompt_tokens_mean"))

    @property
    def completion_tokens_mean(self) -> float | None:
        return _float_or_none(self.summary.get("completion_tokens_mean"))

    @property
    def kind(self) -> str:
        """"rag" or "prompting": which of Azure's two recommended baselines this run is."""
        return "rag" if "rag" in self.strategy.lower() else "prompting"

    @property
    def label(self) -> str:
        """What a comparison table calls this run: model, strategy and folder."""
        return f"{self.summary.get('model', '?')} · {self.summary.get('strategy', '?')} ({self.path.name})"

    @property
    def baseline_label(self) -> str:
        """What the readiness assessment calls a baseline: its strategy, then its model."""
        return f"{self.strategy} ({self.model})"

    @property
    def is_fine_tuned(self) -> bool:
        """A run directory or adapter as the model: the thing a user hopes beats its base."""
        model = Path(str(self.summary.get("model", "")))
        return any((model / f).exists() for f in ("state.json", "adapter", "adapter_config.json"))


def write_eval_dir(out: Path, items: Sequence[Any], summary: dict[str, Any]) -> None:
    """predictions.jsonl (items: dataclasses or dicts, one line each) and summary.json, each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [dataclasses.asdict(it) if dataclasses.is_dataclass(it) else it for it in items]
    rows = [{"id": row["id"], "key": row["key"], **row} if "key" in row and "id" in row else row for row in rows]
    atomic_write_text(out / PREDICTIONS, "".join(json.dumps(row) + "\n" for row in rows))
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")


def default_eval_dir(model_ref: str, data: Path, strategy: str) -> Path:
    """`<data dir>/evals/<model>-<data>-<strategy>`: where the studio lists evals (a run dir's name is its model)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(data).stem}-{strategy}").strip("-")
    model_path = Path(model_ref)
    model_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_path.name or model_ref).strip("-")
    return data_dir() / "evals" / f"{model_slug}-{slug}"


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json of an eval directory, as written."""
    summary_path = Path(path) / SUMMARY
    if not summary_path.is_file():
        raise NotAnEvalDir(f"{path} is not an eval directory: {SUMMARY} is missing; run `tunesmith eval` "
                           "to make one")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EvalDirError(f"{summary_path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(summary, dict):
        raise EvalDirError(f"{summary_path}: expected a JSON object")
    return summary


def read_eval_run(path: str | Path) -> EvalRun:
    """An eval directory's summary, checked for the fields every reader relies on."""
    summary = read_summary(Path(path))
    summary_path = Path(path) / SUMMARY
    for key in ("model", "strategy", "graders"):
        if key not in summary:
            raise EvalDirError(f"{summary_path}: field {key!r} missing")
    for name, g in summary["graders"].items():
        if not isinstance(g, dict) or "mean" not in g:
            raise EvalDirError(f"{summary_path}: field graders.{name}.mean missing")
    return EvalRun(Path(path), summary)


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """predictions.jsonl of an eval directory, in file order."""
    pred_path = Path(path) / PREDICTIONS
    if not pred_path.is_file():
        raise NotAnEvalDir(f"{path} is not an eval directory: {PREDICTIONS} is missing")
    out = []
    for line_no, line in enumerate(pred_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalDirError(f"{pred_path}: line {line_no}: invalid JSON ({e.msg})") from e
        for key in ("id", "scores"):
            if key not in item:
                raise EvalDirError(f"{pred_path}: line {line_no}: field {key!r} missing")
        out.append(item)
    return out


def question_key(turns: Sequence[dict[str, Any]], reference: str | None) -> str:
    """The pairing key of one test item: a hash of its own non-system turns and its reference answer."""
    own = [{k: t[k] for k in _TURN_FIELDS if t.get(k) is not None} for t in turns if t.get("role") != "system"]
    blob = json.dumps({"turns": own, "reference": reference}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def number_repeats(digests: Sequence[str]) -> list[str]:
    """A digest seen before gets `-2`, `-3`, … in order of appearance, so repeated items stay distinct."""
    seen: dict[str, int] = {}
    out = []
    for digest in digests:
        seen[digest] = seen.get(digest, 0) + 1
        out.append(digest if seen[digest] == 1 else f"{digest}-{seen[digest]}")
    return out


def with_pairing_keys(rows: list[dict[str, Any]], strategy: str | None) -> list[dict[str, Any]]:
    """Rows as read; an old eval dir's rows (no `key`) get the key recomputed from the messages they stored."""
    if all(row.get("key") for row in rows):
        return rows
    # the stored messages are the prompt as sent: system prompt (+ context), then 2 turns per few-shot example
    shots = sum(int(k) for k in re.findall(r"few-shot:(\d+)", strategy or ""))
    keys = []
    for row in rows:
        turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") != "system"]
        last_user = max((i for i, m in enumerate(turns) if m.get("role") == "user"), default=0)
        keys.append(question_key(turns[min(2 * shots, last_user):], row.get("reference")))  # never the question
    return [{**row, "key": key} for row, key in zip(rows, number_repeats(keys))]


def find_eval_dirs(roots: list[Path]) -> dict[str, Path]:
    """Eval directories (those holding summary.json) under `roots`, by id = path relative to its root.

    Ids come from this listing only, so a request can never name a folder outside the roots.
    """
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for summary in sorted(root.rglob(SUMMARY)):
            rel = summary.parent.relative_to(root).as_posix()
            found.setdefault(rel if rel != "." else root.name, summary.parent)
    return found


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
