"""`tunesmith assess` answers the data question from a learning curve when one exists: with --curve DIR, or a
curve of the same training file found beside the baselines' eval dirs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.curve.synthetic import item_scores
from tests.test_readiness import FORMAT_USE_CASE, MODEL, evidence, finding  # noqa: F401  (fixture)
from tunesmith.artifacts.curve_dir import CurveDir
from tunesmith.assess.readiness import CAUTION, assess
from tunesmith.cli import app
from tunesmith.curve.fit import fit_with_bootstrap
from tunesmith.curve.verdict import judge

SIZES = [8, 15, 30, 60]


def write_curve(out: Path, train: Path, accuracies: list[float], n_items: int) -> Path:
    """curve.json as `tunesmith curve` writes it, from synthetic item scores with a known trend."""
    fitted = fit_with_bootstrap(SIZES, item_scores(accuracies, n_items), n_resamples=300)
    CurveDir(out).write_curve({
        "model": MODEL, "train": str(train), "metric": "json", "n_test_items": n_items,
        "points": [{"model": MODEL, "examples": n, "score": s, "ci_low": s - 0.05, "ci_high": s + 0.05,
                    "seconds": 10.0} for n, s in zip(SIZES, accuracies)],
        "fit": fitted.fit.to_dict(), "projection": [vars(p) for p in fitted.projections],
        "verdict": judge(fitted).to_dict(), "baselines": []})
    return out


def test_a_rising_curve_answers_the_data_question_with_its_numbers(evidence):  # noqa: F811
    curve = write_curve(evidence["tmp"] / "curve", evidence["train"], [0.2, 0.32, 0.44, 0.55], 300)
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    baselines=evidence["baselines"], model=MODEL, metric="json", target=0.9, curve=curve)
    data = finding(result, "Which")
    said = " ".join(data.reasons)
    assert "Learning curve on 300 test items" in said and "60 examples 55%" in said
    assert "more data of this kind is likely to help (≈ +" in said
    assert any(s.startswith("Collect more examples like these: at 120 the curve projects") for s in data.next_steps)


def test_a_flat_curve_found_beside_the_baselines_says_more_of_the_same_will_not_help(evidence):  # noqa: F811
    write_curve(evidence["tmp"] / "evals" / "curve", evidence["train"], [0.50, 0.505, 0.50, 0.505], 3000)
    done = CliRunner().invoke(app, ["assess", "--use-case", FORMAT_USE_CASE, "--train", str(evidence["train"]),
                                    "--validation", str(evidence["validation"]), "--model", MODEL,
                                    "--metric", "json", "--target", "0.9", "--json",
                                    *[a for b in evidence["baselines"] for a in ("--baseline", str(b))]])
    assert done.exit_code == 0, done.output
    import json

    data = next(f for f in json.loads(done.stdout)["findings"] if f["question"].startswith("Which"))
    assert data["status"] == CAUTION
    assert "flat: more of the same data will not help" in " ".join(data["reasons"])
    assert any("try a larger model" in s for s in data["next_steps"])


def test_the_assessment_report_shows_the_curve_and_its_plot(evidence, tmp_path):  # noqa: F811
    from tunesmith.assess.assessment_report import write_assessment

    curve = write_curve(evidence["tmp"] / "curve", evidence["train"], [0.2, 0.32, 0.44, 0.55], 300)
    CurveDir(curve).write_plot(b"\x89PNG\r\n\x1a\nplot")
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], model=MODEL, curve=curve)
    md, page, _ = write_assessment(result, tmp_path / "report")
    assert "## Learning curve" in md.read_text() and f"![learning curve]({curve / 'curve.png'})" in md.read_text()
    html = page.read_text()
    assert "<h2>Learning curve</h2><p>more data of this kind is likely to help" in html
    assert "src='data:image/png;base64,iVBORw0KGgpwbG90'" in html
