"""The fit recovers a known power law; the monotone fit takes over on too few points; intervals cover the truth."""

from __future__ import annotations

import numpy as np
import pytest

from tests.curve.synthetic import item_scores, power_law
from tunesmith.curve.fit import fit_curve, fit_with_bootstrap

SIZES = [50, 100, 200, 400, 800, 1600]


def test_exact_scores_give_back_the_power_law_that_made_them():
    fit = fit_curve(SIZES, power_law(SIZES, 0.9, 2.0, 0.5))
    assert fit.kind == "power_law"
    assert fit.a == pytest.approx(0.9, abs=1e-3)
    assert fit.b == pytest.approx(2.0, rel=1e-2)
    assert fit.c == pytest.approx(0.5, rel=1e-2)
    assert fit.predict(3200) == pytest.approx(0.9 - 2.0 * 3200 ** -0.5, abs=1e-3)


def test_the_fit_through_noisy_test_items_projects_within_its_interval():
    truth = power_law(SIZES[:4], 0.8, 3.0, 0.6)
    curve = fit_with_bootstrap(SIZES[:4], item_scores(truth, 4000), n_resamples=300)
    assert curve.fit.kind == "power_law"
    doubled = 0.8 - 3.0 * 800 ** -0.6
    two_x = curve.projections[0]
    assert two_x.examples == 800 and two_x.extrapolation
    assert two_x.low <= doubled <= two_x.high
    assert abs(two_x.score - doubled) < 0.03
    true_gain = doubled - truth[-1]
    assert curve.per_doubling.low <= true_gain <= curve.per_doubling.high
    assert [p.examples for p in curve.projections] == [800, 1600]


def test_three_points_get_a_monotone_fit_and_no_projection():
    fit = fit_curve([100, 200, 400], [0.30, 0.25, 0.50])
    assert fit.kind == "monotone"
    assert fit.values == pytest.approx([0.275, 0.275, 0.50])  # the dip is pooled away
    assert fit.per_doubling() == pytest.approx(0.225)
    curve = fit_with_bootstrap([100, 200, 400], item_scores([0.3, 0.25, 0.5], 200), n_resamples=100)
    assert curve.projections == []


def test_falling_scores_fit_as_flat_not_as_a_curve_that_rises_backwards():
    fit = fit_curve(SIZES[:4], [0.6, 0.55, 0.5, 0.45])
    assert fit.b == pytest.approx(0.0)
    assert fit.per_doubling() == pytest.approx(0.0)
    assert np.isclose(fit.predict(10_000), np.mean([0.6, 0.55, 0.5, 0.45]))
