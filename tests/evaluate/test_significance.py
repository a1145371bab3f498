"""The statistics against known values."""

import numpy as np
import pytest

from tunesmith.evaluate.significance import (bootstrap_mean_ci, mcnemar_exact_p, paired_bootstrap_ci, sign_flip_p,
                                             wilson_ci)


def test_mcnemar_exact_on_a_fixed_table():
    # 2x2 table: both pass 40, both fail 30, fixed (b fail, t pass) = 12, broken (b pass, t fail) = 3.
    # Exact two-sided: 2 * P(X <= 3 | n=15, p=.5) = 2 * (1 + 15 + 105 + 455) / 2**15 = 0.03515625
    assert mcnemar_exact_p(12, 3) == pytest.approx(0.03515625, abs=1e-12)
    assert mcnemar_exact_p(3, 12) == pytest.approx(0.03515625, abs=1e-12)
    assert mcnemar_exact_p(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact_p(0, 0) == 1.0
    # 6 vs 0 discordant: 2 / 2**6
    assert mcnemar_exact_p(6, 0) == pytest.approx(0.03125)


def test_paired_bootstrap_ci_covers_the_true_delta():
    rng = np.random.default_rng(123)
    true_delta, covered = 0.1, 0
    for trial in range(40):
        base = rng.uniform(0, 1, 200)
        treat = np.clip(base + true_delta + rng.normal(0, 0.1, 200), -1, 2)
        lo, hi = paired_bootstrap_ci(base, treat, seed=trial, n_resamples=1000)
        covered += lo <= true_delta <= hi
        assert hi - lo < 0.1  # pairing removes the between-item spread: the interval is narrow
    assert covered >= 34  # nominal 95%: 38/40 expected; allow sampling slack


def test_bootstrap_mean_ci_edge_cases():
    assert bootstrap_mean_ci([1.0]) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_mean_ci([])))
    lo, hi = bootstrap_mean_ci([0, 1] * 50)
    assert lo < 0.5 < hi


def test_sign_flip_exact_small_sample():
    # 5 positive deltas of equal size: only all-positive and all-negative sign patterns are as extreme: 2/32
    assert sign_flip_p([0.2] * 5) == pytest.approx(2 / 32)
    assert sign_flip_p([0.0, 0.0]) == 1.0
    assert sign_flip_p([0.3, -0.3, 0.1, -0.1]) == pytest.approx(1.0)
    assert sign_flip_p(np.full(40, 0.05)) < 0.001  # Monte Carlo branch


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(0, 8)
    assert lo == 0.0 and hi == pytest.approx(0.3244, abs=1e-3)  # 0 of 8 passing does not prove a 0% rate
    lo, hi = wilson_ci(50, 100)
    assert (lo, hi) == (pytest.approx(0.4038, abs=1e-3), pytest.approx(0.5962, abs=1e-3))
    assert wilson_ci(8, 8)[1] == 1.0
