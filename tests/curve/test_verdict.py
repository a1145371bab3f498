"""Verdicts for synthetic rising, flat and noisy curves, in the issue's words."""

from __future__ import annotations

from tests.curve.synthetic import item_scores
from tunesmith.curve.fit import fit_with_bootstrap
from tunesmith.curve.verdict import FLAT, NOISY, RISING, judge

SIZES = [67, 134, 268, 536]


def _verdict(accuracies, n_items):
    return judge(fit_with_bootstrap(SIZES, item_scores(accuracies, n_items), n_resamples=400))


def test_a_rising_curve_says_more_data_helps_with_points_per_doubling():
    v = _verdict([0.10, 0.21, 0.30, 0.37], 400)
    assert v.kind == RISING
    assert v.message.startswith("more data of this kind is likely to help (≈ +")
    assert "points per doubling" in v.message
    assert 0.03 < v.per_doubling < 0.10


def test_a_flat_curve_says_try_a_larger_model():
    v = _verdict([0.50, 0.505, 0.50, 0.505], 3000)
    assert v.kind == FLAT
    assert v.message.startswith("flat: more of the same data will not help; try a larger model, a better prompt "
                                "format or harder examples")


def test_a_noisy_curve_asks_for_more_test_items_and_says_how_many():
    v = _verdict([0.20, 0.30, 0.25, 0.35], 20)
    assert v.kind == NOISY
    assert v.message.startswith("too noisy to tell: add test items (you have 20; about ")
    assert v.items_needed > 20
    assert f"about {v.items_needed} would separate these points" in v.message
    # with that many items (the same curve) the verdict is no longer "too noisy"
    assert _verdict([0.20, 0.30, 0.25, 0.35], v.items_needed * 2).kind != NOISY


def test_a_handful_of_test_items_is_never_enough_for_a_verdict_even_when_every_score_agrees():
    v = _verdict([0.0, 0.0, 0.0, 0.0], 12)  # 0 of 12 everywhere: the bootstrap sees no spread at all
    assert v.kind == NOISY
    assert "you have 12; about 30 would separate these points" in v.message
