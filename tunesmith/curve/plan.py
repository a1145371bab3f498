"""Which points a curve runs, in order, and which of them fit a time budget.

The main model runs at every fraction, smallest first; each other model (`--models`) at the two largest
fractions, so the last doubling can be compared across sizes. With a budget, the first point is run and
timed; each later point is estimated from it (training time ∝ examples × epochs × parameters, evaluation
time ∝ parameters, the same test items for all), and points are kept in order while they fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.artifacts.curve_dir import point_id
from tunesmith.assess.cost import params_billions
from tunesmith.catalog import find_model_spec
from tunesmith.hparams import default_n_epochs

OTHER_MODEL_FRACTIONS = 2  # fractions each extra model runs at: the largest ones


@dataclass
class PlannedPoint:
    model: str
    fraction: float
    examples: int
    n_epochs: int  # what "auto" picks for this many examples, or the fixed number given

    @property
    def id(self) -> str:
        return point_id(self.model, self.examples)


@dataclass
class Measured:
    """The first point, timed."""
    point: PlannedPoint
    train_seconds: float
    eval_seconds: float


@dataclass
class LeftOut:
    point: PlannedPoint
    estimated_seconds: float

    def describe(self) -> str:
        return f"{self.point.model} at {self.point.fraction:g} ({self.point.examples} examples, ≈ " \
               f"{self.estimated_seconds / 60:.1f} min)"


def plan_points(model: str, models: list[str], fractions: list[float], sizes: list[int],
                n_epochs: int | str = "auto") -> list[PlannedPoint]:
    """Every point in the order it runs; `sizes[i]` is the examples of `fractions[i]` (ascending)."""
    def point(m: str, f: float, n: int) -> PlannedPoint:
        return PlannedPoint(m, f, n, default_n_epochs(n) if n_epochs == "auto" else int(n_epochs))

    points = [point(model, f, n) for f, n in zip(fractions, sizes)]
    for other in models:
        if other != model:
            points += [point(other, f, n) for f, n in list(zip(fractions, sizes))[-OTHER_MODEL_FRACTIONS:]]
    return points


def estimate_seconds(point: PlannedPoint, first: Measured) -> float:
    """Train + evaluate time of `point`, scaled from the first point's."""
    size = _size_ratio(point.model, first.point.model)
    work = (point.examples * point.n_epochs) / max(1, first.point.examples * first.point.n_epochs)
    return first.train_seconds * work * size + first.eval_seconds * size


def fit_budget(points: list[PlannedPoint], first: Measured, budget_minutes: float) -> tuple[list[PlannedPoint],
                                                                                          list[LeftOut]]:
    """The points (in order, the first included) whose estimated times add up within the budget; the rest."""
    spent = first.train_seconds + first.eval_seconds
    kept, left_out = [points[0]], []
    for p in points[1:]:
        cost = estimate_seconds(p, first)
        if spent + cost <= budget_minutes * 60:
            kept.append(p)
            spent += cost
        else:
            left_out.append(LeftOut(p, cost))
    return kept, left_out


def _size_ratio(model: str, reference: str) -> float:
    """Parameters of `model` over `reference`'s (1 when either is unknown)."""
    specs = find_model_spec(model), find_model_spec(reference)
    a, b = (params_billions(s) if s is not None else None for s in specs)
    return a / b if a and b else 1.0
