"""Which points a curve runs, and which a --budget-minutes leaves out, from the first point's measured time."""

from __future__ import annotations

import pytest

from tunesmith.curve.plan import Measured, estimate_seconds, fit_budget, plan_points

FRACTIONS, SIZES = [0.125, 0.25, 0.5, 1.0], [20, 40, 80, 160]


def test_other_models_run_at_the_two_largest_fractions_after_the_main_curve():
    points = plan_points("smollm2-135m-instruct", ["Phi-3-mini-4k-instruct"], FRACTIONS, SIZES)
    assert [(p.model, p.examples) for p in points] == [
        ("smollm2-135m-instruct", 20), ("smollm2-135m-instruct", 40), ("smollm2-135m-instruct", 80),
        ("smollm2-135m-instruct", 160), ("Phi-3-mini-4k-instruct", 80), ("Phi-3-mini-4k-instruct", 160)]
    assert [p.n_epochs for p in points[:4]] == [5, 3, 3, 3]  # what --n-epochs auto picks per subset size


def test_the_budget_keeps_what_fits_from_the_first_points_speed_and_names_what_it_left_out():
    points = plan_points("smollm2-135m-instruct", ["Phi-3-mini-4k-instruct"], FRACTIONS, SIZES)
    first = Measured(points[0], train_seconds=60.0, eval_seconds=30.0)
    # 20 examples x 5 epochs trained in 60 s: 40 x 3 takes 72 s, 80 x 3 144 s, 160 x 3 288 s (+30 s of eval)
    assert estimate_seconds(points[1], first) == pytest.approx(72 + 30)
    kept, left_out = fit_budget(points, first, budget_minutes=10)
    assert [p.examples for p in kept] == [20, 40, 80]
    assert [(x.point.model, x.point.examples) for x in left_out] == [
        ("smollm2-135m-instruct", 160), ("Phi-3-mini-4k-instruct", 80), ("Phi-3-mini-4k-instruct", 160)]
    assert left_out[1].estimated_seconds == pytest.approx((144 + 30) * 3.8 / 0.135)  # 3.8B against 135M
    assert left_out[0].describe() == "smollm2-135m-instruct at 1 (160 examples, ≈ 5.3 min)"
