"""What the curve says, in the words a user acts on: rising, flat, or too noisy to tell.

- flat:   the gain per doubling of the data is below FLAT_PER_DOUBLING (2 points) with 95% confidence (a
          gain too small to be worth collecting for is flat, however sure);
- rising: else, when it is above zero with 95% confidence;
- noisy:  neither, or fewer than MIN_TEST_ITEMS test items. The interval's width shrinks as 1/sqrt(test items), which says how many test items would
          make it decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tunesmith.curve.fit import CurveFit

FLAT_PER_DOUBLING = 0.02  # under 2 points per doubling of the data, more of the same is not worth collecting
MIN_TEST_ITEMS = 30  # below it a bootstrap over items can look sure (0 of 12 everywhere) when it is not
RISING, FLAT, NOISY = "rising", "flat", "too noisy"


@dataclass
class Verdict:
    kind: str
    message: str
    per_doubling: float | None  # score gained per doubling of the data (0.05 = 5 points)
    n_items: int
    items_needed: int | None = None  # test items that would decide it, when too noisy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(curve: CurveFit) -> Verdict:
    """The verdict from the fit's gain per doubling and its bootstrap interval."""
    gain = curve.per_doubling
    n = curve.n_items
    if gain.estimate is None or gain.low is None or gain.high is None:
        return Verdict(NOISY, "too noisy to tell: a curve needs at least two training sizes", None, n)
    if n < MIN_TEST_ITEMS:
        needed = max(MIN_TEST_ITEMS, items_to_decide(gain.estimate, gain.low, gain.high, n))
        return Verdict(NOISY, f"too noisy to tell: add test items (you have {n}; about {needed} would separate "
                       f"these points): ≈ {_points(gain.estimate)} points per doubling", gain.estimate, n, needed)
    if gain.high < FLAT_PER_DOUBLING:
        return Verdict(FLAT, "flat: more of the same data will not help; try a larger model, a better prompt "
                       f"format or harder examples (≈ {_points(gain.estimate)} points per doubling, at most "
                       f"{_points(gain.high)})", gain.estimate, n)
    if gain.low > 0:
        return Verdict(RISING, f"more data of this kind is likely to help (≈ {_points(gain.estimate)} points per "
                       f"doubling; 95% interval {_points(gain.low)} to {_points(gain.high)})", gain.estimate, n)
    needed = items_to_decide(gain.estimate, gain.low, gain.high, n)
    return Verdict(NOISY, f"too noisy to tell: add test items (you have {n}; about {needed} would separate these "
                   f"points): ≈ {_points(gain.estimate)} points per doubling, 95% interval {_points(gain.low)} to "
                   f"{_points(gain.high)}", gain.estimate, n, needed)


def items_to_decide(estimate: float, low: float, high: float, n_items: int) -> int:
    """Test items at which the interval (half-width ∝ 1/sqrt(items)) would clear zero, if the gain is at least
    half the flat threshold, or the threshold, if it is less."""
    half = (high - low) / 2
    room = estimate if estimate >= FLAT_PER_DOUBLING / 2 else FLAT_PER_DOUBLING - estimate
    if half <= 0 or room <= 0:
        return n_items + 1
    return max(n_items + 1, math.ceil(n_items * (half / room) ** 2))


def _points(value: float) -> str:
    """A score difference in points (0.053 -> "+5.3")."""
    return f"{value * 100:+.1f}"
