"""Baselines on a curve: eval directories of the model before fine-tuning (prompted, RAG), drawn at 0 examples.

They are read before any training, so a baseline of another test file or without the curve's grader is
refused up front; once the points are evaluated, their items are paired with the points' (evaluate.pairing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.artifacts.eval_dir import EvalRun, read_eval_run
from tunesmith.curve.checks import CurveError
from tunesmith.evaluate.pairing import grader_identity, pair_items


@dataclass
class Baseline:
    label: str
    eval_dir: str
    grader: str  # the baseline's name for the curve's metric
    score: float
    ci_low: float | None
    ci_high: float | None
    n: int
    examples: int = 0
    paired: str | None = None  # how its items paired with the curve's largest point

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_baselines(paths: list[Path], test: Path, metric: str) -> list[Baseline]:
    return [read_baseline(Path(p), Path(test), metric) for p in paths]


def read_baseline(path: Path, test: Path, metric: str) -> Baseline:
    run = read_eval_run(path)
    wanted = grader_identity(metric, {})
    name = next((g for g in run.graders if grader_identity(g, run.summary["graders"][g]) == wanted), None)
    if name is None:
        raise CurveError(f"--baseline {path}: it was not graded with {metric} (its graders: "
                         f"{', '.join(run.graders) or 'none'}); evaluate it with the curve's grader")
    if run.data and Path(run.data).name != test.name and not _same(Path(run.data), test):
        raise CurveError(f"--baseline {path}: it was evaluated on {run.data}, the curve tests on {test}; "
                         "a baseline must answer the same test items")
    score = run.graders[name]
    ci = score.ci95 or (None, None)
    return Baseline(run.baseline_label, str(path), name, score.mean, ci[0], ci[1], score.n)


def pair_with_point(baseline: Baseline, point_eval: EvalRun) -> str:
    """How the baseline's items pair with a point's (a problem when they do not: then it is not comparable)."""
    pairing = pair_items(read_eval_run(baseline.eval_dir), point_eval)
    return pairing.problem or pairing.describe()


def _same(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.expanduser().resolve()
    except OSError:
        return False
