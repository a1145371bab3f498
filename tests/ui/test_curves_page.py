"""The studio's Curves page in a real browser against a real server: a curve made from synthetic scores is
listed, and its page shows the verdict, the plot (a real PNG the browser decodes) and the points."""

from __future__ import annotations

import pytest

from tests.curve.synthetic import item_scores
from tunesmith.artifacts.curve_dir import CurveDir
from tunesmith.curve.fit import fit_with_bootstrap
from tunesmith.curve.plot import render_plot
from tunesmith.curve.verdict import judge

pytestmark = pytest.mark.timeout(600)
SIZES = [67, 134, 268, 536]


def write_curve(folder: CurveDir) -> dict:
    accuracies = [0.10, 0.21, 0.30, 0.37]
    fitted = fit_with_bootstrap(SIZES, item_scores(accuracies, 200), n_resamples=200)
    curve = {"model": "smollm2-135m-instruct", "metric": "execution_match", "n_test_items": 200,
             "points": [{"model": "smollm2-135m-instruct", "examples": n, "score": s, "ci_low": s - 0.06,
                         "ci_high": s + 0.06, "seconds": 60.0 * n / 67} for n, s in zip(SIZES, accuracies)],
             "baselines": [{"label": "few-shot:3 (smollm2-135m-instruct)", "score": 0.04, "ci_low": 0.01,
                            "ci_high": 0.1}],
             "fit": fitted.fit.to_dict(), "projection": [{**vars(p), "seconds_estimate": 900.0}
                                                         for p in fitted.projections],
             "verdict": judge(fitted).to_dict(), "plot": "curve.png", "wall_seconds": 600, "cpu": "AMD EPYC"}
    folder.write_plot(render_plot(curve))
    folder.write_curve(curve)
    return curve


def test_the_curves_page_shows_the_verdict_the_plot_and_the_points(page, studio, screenshots):  # noqa: F811
    curve = write_curve(CurveDir(studio.data_dir / "curves" / "text-to-sql"))
    page.goto("/#/curves")
    page.locator("main a:text-is('text-to-sql')").click()
    page.wait_for_url("**/#/curves/text-to-sql")
    page.locator("main h1:text-is('Learning curve: text-to-sql')").wait_for()
    assert curve["verdict"]["message"] in page.locator("main .msg").inner_text()
    assert page.locator("main img").evaluate("img => img.decode().then(() => img.naturalWidth)") > 300
    rows = page.locator("main tbody tr")
    assert rows.count() == 1 + 4 + 2  # the baseline, the points, the projection to 2x and 4x
    assert "536" in rows.nth(4).inner_text() and "37.0%" in rows.nth(4).inner_text()
    assert "projection (extrapolated)" in rows.nth(5).inner_text()
    page.screenshot(path=str(screenshots / "curves.png"), full_page=True)
