"""The statistics behind eval summaries and A/B comparisons. Seeded, so the same files give the same numbers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import binomtest

N_BOOTSTRAP = 5000


def bootstrap_mean_ci(values: Sequence[float], *, level: float = 0.95, n_resamples: int = N_BOOTSTRAP,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `values`; a single value gives a zero-width interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    if data.size == 1:
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return (float(lo), float(hi))


def wilson_ci(successes: int, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a pass rate: unlike the bootstrap, 0/8 passes still admits a rate above 0."""
    if n == 0:
        return (float("nan"), float("nan"))
    rate = successes / n
    denominator = 1 + z * z / n
    center = (rate + z * z / (2 * n)) / denominator
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return (float(max(0.0, center - half)), float(min(1.0, center + half)))


def paired_bootstrap_ci(baseline: Sequence[float], treatment: Sequence[float], **kwargs: float) -> tuple[float, float]:
    """Interval for mean(treatment - baseline): items are resampled as pairs, which keeps their correlation."""
    deltas = np.asarray(treatment, dtype=float) - np.asarray(baseline, dtype=float)
    return bootstrap_mean_ci(deltas, **kwargs)  # type: ignore[arg-type]


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar test: only discordant pairs carry information; under H0 each is a coin flip."""
    discordant = fixed + broken
    if discordant == 0:
        return 1.0
    return float(binomtest(fixed, discordant, 0.5, alternative="two-sided").pvalue)


def sign_flip_p(deltas: Sequence[float], *, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation test on continuous scores: randomly flip each delta's sign under H0."""
    data = np.asarray(deltas, dtype=float)
    data = data[data != 0]
    if data.size == 0:
        return 1.0
    observed = abs(data.mean())
    if data.size <= 16:  # few enough to enumerate all 2^n sign patterns: the exact p-value
        signs = ((np.arange(2**data.size)[:, None] >> np.arange(data.size)) & 1) * 2 - 1
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(n_resamples, data.size))
    flipped = np.abs((signs * data).mean(axis=1))
    # +1 in numerator and denominator (Monte Carlo case) keeps p > 0, as a finite resample cannot prove p = 0
    if data.size <= 16:
        return float(np.mean(flipped >= observed - 1e-12))
    return float((np.sum(flipped >= observed - 1e-12) + 1) / (n_resamples + 1))
