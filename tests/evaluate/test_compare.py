"""Paired comparison of eval directories, verdicts and the reports."""

import json

import pytest

from tunesmith.evaluate.compare import MIN_PAIRED_ITEMS, compare, verdict
from tunesmith.evaluate.comparison_report import write_report
from tunesmith.artifacts.eval_dir import write_eval_dir
from tunesmith.evaluate.run import ItemResult


def make_eval(path, model, exact_scores, bleu_scores=None, ids=None):
    ids = ids or [f"item{i}" for i in range(len(exact_scores))]
    bleu_scores = bleu_scores or [0.5] * len(exact_scores)
    items = [
        ItemResult(i, [{"role": "user", "content": i}], "ref", "out", {"exact": e, "bleu": b}, {"exact": "", "bleu": ""},
                   {"exact": e == 1.0, "bleu": b >= 0.5}, 0.1, 10, 3, "stop", key=i)
        for i, e, b in zip(ids, exact_scores, bleu_scores)
    ]
    n = len(items)
    summary = {"model": model, "strategy": "zero-shot", "data": "test.jsonl", "n": n, "graders": {
        "exact": {"mean": sum(exact_scores) / n, "pass_rate": sum(exact_scores) / n, "ci95": [0.0, 1.0], "n": n,
                  "binary": True, "threshold": 1.0},
        "bleu": {"mean": sum(bleu_scores) / n, "pass_rate": 0.5, "ci95": [0.2, 0.8], "n": n, "binary": False,
                 "threshold": 0.5}}}
    write_eval_dir(path, items, summary)
    return path


def test_improvement_is_detected_with_fixed_and_broken_items(tmp_path):
    base = make_eval(tmp_path / "base", "base-model", [0.0] * 20 + [1.0] * 10)
    better_scores = [1.0] * 14 + [0.0] * 6 + [1.0] * 9 + [0.0]  # fixes items 0-13, breaks item 29
    treat = make_eval(tmp_path / "treat", "tuned", better_scores, bleu_scores=[0.7] * 30)
    result = compare([base, treat])
    exact = {g.grader: g for g in result.treatments[0].graders}["exact"]
    assert exact.verdict == "Improved" and exact.test == "McNemar exact"
    assert exact.fixed == [f"item{i}" for i in range(14)] and exact.broken == ["item29"]
    assert exact.delta == pytest.approx(13 / 30)
    assert exact.ci95[0] > 0
    bleu = {g.grader: g for g in result.treatments[0].graders}["bleu"]
    assert bleu.verdict == "Improved" and "sign-flip" in bleu.test
    assert result.warnings == []


def test_degraded_fine_tuned_model_is_flagged_loudly(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "state.json").write_text("{}")
    base = make_eval(tmp_path / "base", "smollm2-135m-instruct", [1.0] * 25)
    worse = make_eval(tmp_path / "ft", str(run_dir), [0.0] * 10 + [1.0] * 15)
    result = compare([worse, base], baseline=base)
    assert result.baseline.path == base
    assert result.treatments[0].graders[0].verdict == "Degraded"
    assert any("FINE-TUNED MODEL IS WORSE THAN BASELINE" in w for w in result.warnings)
    files = write_report(result, tmp_path / "report")
    assert "FINE-TUNED MODEL IS WORSE" in files.markdown.read_text()
    page = files.html.read_text()
    assert 'class="warn"' in page and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN, nothing external
    assert "Degraded" in json.loads(files.json.read_text())["treatments"][0]["graders"][0]["verdict"]


def test_a_weaker_prompt_on_the_base_model_is_noted_not_alarmed(tmp_path):
    base = make_eval(tmp_path / "few-shot", "smollm2-135m-instruct", [1.0] * 25)
    weaker = make_eval(tmp_path / "zero-shot", "smollm2-135m-instruct", [0.0] * 10 + [1.0] * 15)
    result = compare([base, weaker])
    assert result.treatments[0].graders[0].verdict == "Degraded"
    assert [w.split(":")[0] for w in result.warnings] == ["Worse than the baseline"]
    files = write_report(result, tmp_path / "report")
    page = files.html.read_text()
    assert 'class="note">Worse than the baseline' in page and 'class="warn"' not in page


def test_pairing_uses_only_shared_ids_and_too_few_samples(tmp_path):
    base = make_eval(tmp_path / "a", "m", [0.0] * 8, ids=[f"x{i}" for i in range(8)])
    treat = make_eval(tmp_path / "b", "m", [1.0] * 8, ids=[f"x{i}" for i in range(2, 10)])
    t = compare([base, treat]).treatments[0]
    assert t.only_in_baseline == 2 and t.only_in_treatment == 2
    assert t.graders[0].n == 6 and t.graders[0].verdict == "TooFewSamples"


def test_verdict_thresholds():
    assert verdict(MIN_PAIRED_ITEMS - 1, 0.9, 0.0001) == "TooFewSamples"
    assert verdict(50, 0.1, 0.01) == "Improved"
    assert verdict(50, -0.1, 0.01) == "Degraded"
    assert verdict(50, 0.1, 0.2) == "Inconclusive"


def test_three_runs_against_one_baseline(tmp_path):
    runs = [make_eval(tmp_path / n, n, [float(i % k == 0) for i in range(12)]) for n, k in
            (("a", 2), ("b", 3), ("c", 1))]
    result = compare(runs)
    assert [t.treatment.path.name for t in result.treatments] == ["b", "c"]
    with pytest.raises(ValueError, match="at least two"):
        compare(runs[:1])
    with pytest.raises(FileNotFoundError, match="summary.json"):
        compare([runs[0], tmp_path])
