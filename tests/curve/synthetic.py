"""Item-level scores of a learning curve with a known truth: item i passes at a point when its difficulty is
below that point's accuracy, so a larger subset passes every item a smaller one did (as real curves mostly do)."""

from __future__ import annotations

import numpy as np


def item_scores(accuracies: list[float], n_items: int, seed: int = 0) -> np.ndarray:
    """(points × items) pass/fail scores whose means are `accuracies` up to 1/n_items."""
    difficulty = (np.random.default_rng(seed).permutation(n_items) + 0.5) / n_items
    return (difficulty[None, :] < np.asarray(accuracies)[:, None]).astype(float)


def power_law(n: list[int], a: float, b: float, c: float) -> list[float]:
    return [a - b * x ** (-c) for x in n]
