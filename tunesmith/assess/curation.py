"""Curation signals in a training set: what makes fine-tuning learn the wrong thing.

Duplicates over-weight some examples; train/validation overlap makes validation scores lie; one input with
different answers teaches the model to guess; length outliers are often pasted logs or truncated answers.
The first three come from data validation (`tunesmith.data.validate`); length outliers are measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.openai_tokens import openai_token_count
from tunesmith.conversation import Conversation

# Validation codes that are curation problems, and how the assessment words them.
CURATION_CODES = {
    "duplicate_example": "duplicate example(s)",
    "near_duplicate": "near-duplicate example(s)",
    "conflicting_answers": "input(s) repeated with a different answer (label noise?)",
    "train_validation_overlap": "validation example(s) also in the training data",
}
OUTLIER_IQR_FACTOR = 3.0  # Tukey's "far out" fence: flags only lengths clearly unlike the rest
SHOW = 5  # line numbers listed per signal


@dataclass
class Signal:
    code: str
    count: int
    lines: list[int] = field(default_factory=list)  # the first few, in the file named by `file`
    file: str | None = None  # None: the training file

    def sentence(self) -> str:
        what = CURATION_CODES.get(self.code, self.code)
        where = f" in {self.file}" if self.file else ""
        lines = f", e.g. line(s) {', '.join(map(str, self.lines[:SHOW]))}{where}" if self.lines else ""
        return f"{self.count} {what}{lines}."


def signals_from_validation(report) -> list[Signal]:
    """The curation problems a ValidationReport found, with counts of all of them and the first lines."""
    issues = list(report.errors) + list(report.warnings)
    out = []
    for code in CURATION_CODES:
        count = report.counts.get(code, 0)
        if count:
            listed = [i for i in issues if i.code == code]
            out.append(Signal(code, count, [i.line for i in listed if i.line is not None],
                              listed[0].file if listed else None))
    return out


def length_outliers(numbered: list[tuple[int, Conversation]]) -> tuple[Signal | None, tuple[float, float] | None]:
    """Examples far outside the usual length (in cl100k tokens), and the fence used."""
    lengths = [openai_token_count(c) for _, c in numbered]
    fence = _tukey_fence(lengths)
    if fence is None:
        return None, None
    lo, hi = fence
    lines = [line for (line, _), n in zip(numbered, lengths) if n < lo or n > hi]
    return (Signal("length_outlier", len(lines), lines) if lines else None), fence


def length_outlier_sentence(signal: Signal, fence: tuple[float, float]) -> str:
    lo, hi = fence
    return (f"{signal.count} length outlier(s) outside {max(lo, 0):.0f}-{hi:.0f} tokens, e.g. line(s) "
            f"{', '.join(map(str, signal.lines[:SHOW]))}: check for pasted logs or cut-off answers.")


def _tukey_fence(values: list[int]) -> tuple[float, float] | None:
    if len(values) < 8:  # quartiles of a handful of numbers flag noise, not outliers
        return None
    ordered = sorted(values)
    q1, q3 = ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]
    iqr = max(q3 - q1, 1)
    return q1 - OUTLIER_IQR_FACTOR * iqr, q3 + OUTLIER_IQR_FACTOR * iqr
