"""The curve through the points: a saturating power law `score = a - b·n^(-c)` (b ≥ 0, c > 0), or a monotone
(isotonic) fit where there are too few points for three parameters; uncertainty from a bootstrap over test items.

For a fixed exponent c the law is linear in a and b, so the fit is a profile least squares: the best (a, b) in
closed form for each c of a grid, the best c refined by a bounded scalar search. The same grid fits every
bootstrap resample at once. Resampling test items (the same items for every point, as they were evaluated)
keeps the points' correlation: an item that is hard at 100 examples tends to be hard at 800.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

MIN_POWER_LAW_POINTS = 4  # three parameters need one point more to say anything about their fit
C_GRID = np.geomspace(0.02, 3.0, 240)
N_BOOTSTRAP = 1000
LEVEL = 0.95


@dataclass
class Fit:
    kind: str  # "power_law" | "monotone"
    a: float | None = None
    b: float | None = None
    c: float | None = None
    examples: list[int] = field(default_factory=list)  # monotone: the points and their fitted values
    values: list[float] = field(default_factory=list)

    def predict(self, n: float) -> float:
        if self.kind == "power_law":
            return float(self.a - self.b * n ** (-self.c))
        return float(np.interp(np.log(n), np.log(self.examples), self.values))

    def per_doubling(self) -> float | None:
        """Points gained from doubling the largest subset (power law), or per doubling over the last step."""
        n = self.examples[-1]
        if self.kind == "power_law":
            return self.predict(2 * n) - self.predict(n)
        if len(self.examples) < 2:
            return None
        steps = np.log2(self.examples[-1] / self.examples[-2])
        return float((self.values[-1] - self.values[-2]) / steps)

    def describe(self) -> str:
        if self.kind == "power_law":
            return f"score = {self.a:.3f} - {self.b:.3f}·n^(-{self.c:.3f})"
        return "monotone (isotonic) fit: too few points for a power law"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "formula": self.describe()}


@dataclass
class Interval:
    estimate: float | None
    low: float | None
    high: float | None


@dataclass
class Projection:
    examples: int
    score: float
    low: float
    high: float
    extrapolation: bool = True


@dataclass
class CurveFit:
    fit: Fit
    per_doubling: Interval
    projections: list[Projection]
    n_items: int
    n_resamples: int


def fit_curve(examples: list[int], scores: list[float]) -> Fit:
    """The power law on MIN_POWER_LAW_POINTS points or more, else the monotone fit."""
    n, y = np.asarray(examples, dtype=float), np.asarray(scores, dtype=float)
    if len(n) >= MIN_POWER_LAW_POINTS:
        return fit_power_law(n, y)
    return fit_monotone(n, y)


def fit_power_law(n: np.ndarray, y: np.ndarray) -> Fit:
    sse = _profile_sse(n, y[None, :])[0]
    best = int(np.argmin(sse))
    lo, hi = C_GRID[max(best - 1, 0)], C_GRID[min(best + 1, len(C_GRID) - 1)]
    refined = minimize_scalar(lambda c: _profile_sse(n, y[None, :], np.array([c]))[0, 0], bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-6})
    c = float(refined.x) if refined.fun <= sse[best] else float(C_GRID[best])
    a, b = _linear_fit(n, y, c)
    return Fit("power_law", a, b, c, examples=[int(v) for v in n])


def _linear_fit(n: np.ndarray, y: np.ndarray, c: float) -> tuple[float, float]:
    """Least-squares a, b of y = a - b·x with x = n^-c, b held at 0 where the data falls (no rising curve)."""
    x = n ** (-c)
    xm = x - x.mean()
    slope = float((xm * (y - y.mean())).sum() / (xm * xm).sum())
    b = max(0.0, -slope)
    return float(y.mean() + b * x.mean()), b


def _profile_sse(n: np.ndarray, ys: np.ndarray, grid: np.ndarray = C_GRID) -> np.ndarray:
    """(resamples, grid) residual sums of squares of the best a, b ≥ 0 at each c, for every row of `ys`."""
    x = n[None, :] ** (-grid[:, None])  # (grid, points)
    xm = x - x.mean(axis=1, keepdims=True)
    sxx = (xm * xm).sum(axis=1)  # (grid,)
    yc = ys - ys.mean(axis=1, keepdims=True)
    syy = (yc * yc).sum(axis=1)  # (resamples,)
    slope = yc @ xm.T / sxx[None, :]  # (resamples, grid); a rising curve has slope ≤ 0 in x
    explained = np.where(slope < 0, slope * slope * sxx[None, :], 0.0)
    return syy[:, None] - explained


def fit_monotone(n: np.ndarray, y: np.ndarray) -> Fit:
    """Pool-adjacent-violators: the closest non-decreasing sequence to the scores (in order of n)."""
    blocks: list[list[float]] = []  # [sum, count]
    for value in y:
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    values = [s / k for s, k in blocks for _ in range(int(k))]
    return Fit("monotone", examples=[int(v) for v in n], values=values)


def fit_with_bootstrap(examples: list[int], item_scores: np.ndarray, *, n_resamples: int = N_BOOTSTRAP,
                       seed: int = 0, bounds: tuple[float, float] | None = (0.0, 1.0)) -> CurveFit:
    """The fit of the points' mean scores (`item_scores`: points × test items) with intervals for the gain per
    doubling and the projections to 2× and 4× the largest subset. `bounds` clip projected scores."""
    n = np.asarray(examples, dtype=float)
    fit = fit_curve(examples, list(item_scores.mean(axis=1)))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, item_scores.shape[1], size=(n_resamples, item_scores.shape[1]))
    ys = np.stack([item_scores[:, p].mean(axis=1) for p in picks])  # (resamples, points)
    fits = _resample_fits(n, ys, fit.kind)
    last = int(n[-1])
    gains = np.array([f.per_doubling() if f.per_doubling() is not None else np.nan for f in fits])
    per_doubling = Interval(fit.per_doubling(), *_interval(gains))
    projections = []
    if fit.kind == "power_law":
        for factor in (2, 4):
            samples = np.array([f.predict(factor * last) for f in fits])
            score = fit.predict(factor * last)
            lo, hi = _interval(samples)
            if bounds is not None:
                score, lo, hi = (float(np.clip(v, *bounds)) for v in (score, lo, hi))
            projections.append(Projection(factor * last, score, lo, hi))
    return CurveFit(fit, per_doubling, projections, item_scores.shape[1], n_resamples)


def _resample_fits(n: np.ndarray, ys: np.ndarray, kind: str) -> list[Fit]:
    if kind != "power_law":
        return [fit_monotone(n, y) for y in ys]
    cs = C_GRID[np.argmin(_profile_sse(n, ys), axis=1)]
    out = []
    for y, c in zip(ys, cs):
        a, b = _linear_fit(n, y, float(c))
        out.append(Fit("power_law", a, b, float(c), examples=[int(v) for v in n]))
    return out


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)
