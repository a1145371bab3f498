"""`tunesmith curve` end to end on tiny-random: curve.json, the plot, --json, a baseline at 0 examples, bad
input refused before any training, and a curve killed after its first point resuming without retraining it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.evaluate.fixtures import write_scored_eval
from tests.training.conftest import family_model_dir, write_chat_file  # noqa: F401  (fixture)
from tunesmith.cli import app

FAST = ["--n-epochs", "1", "--max-new-tokens", "4", "--eval-batch-size", "8", "--batch-size", "4"]


@pytest.fixture
def files(tmp_path):
    return write_chat_file(tmp_path / "train.jsonl", 24, seed=1), write_chat_file(tmp_path / "test.jsonl", 12, seed=99)


def _curve(train: Path, test: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["curve", "--model", "tiny-random", "--train", str(train), "--test", str(test),
                                    "--grader", "exact", "--fractions", "0.5,1", "--output", str(out), *FAST,
                                    *extra])


def test_curve_writes_curve_json_and_a_plot_and_json_prints_the_same(tmp_path, files):
    train, test = files
    baseline = write_scored_eval(tmp_path / "baseline", test, correct={0, 1, 2}, graders=("exact",))
    out = tmp_path / "curve"
    done = _curve(train, test, out, "--baseline", str(baseline))
    assert done.exit_code == 0, done.output
    curve = json.loads((out / "curve.json").read_text())
    assert [p["examples"] for p in curve["points"]] == [12, 24]
    for p in curve["points"]:
        assert {"examples", "score", "ci_low", "ci_high", "seconds", "tokens", "cost"} <= set(p)
        assert p["ci_low"] <= p["score"] <= p["ci_high"] and p["seconds"] > 0 and p["tokens"] > 0
        assert Path(p["run_dir"], "adapter", "adapter_model.safetensors").is_file()
        assert json.loads(Path(p["eval_dir"], "summary.json").read_text())["n"] == 12  # the same 12 items
    assert curve["fit"]["kind"] == "monotone"  # two points support no power law
    assert curve["verdict"]["kind"] == "too noisy"  # 12 test items
    assert "you have 12; about" in curve["verdict"]["message"]
    assert curve["baselines"][0]["examples"] == 0 and curve["baselines"][0]["score"] == pytest.approx(0.25)
    assert curve["last_doubling"]["from"] == 12 and curve["last_doubling"]["to"] == 24
    assert curve["verdict"]["message"].split(":")[0] in done.output
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert curve["points_seconds"] == pytest.approx(sum(p["seconds"] for p in curve["points"]), abs=0.2)

    again = _curve(train, test, out, "--baseline", str(baseline), "--json")  # every point done: nothing retrains
    assert again.exit_code == 0, again.output
    printed = json.loads(again.stdout)
    assert printed["points_seconds"] == curve["points_seconds"]  # the resumed run's time is not all there was
    assert {k: v for k, v in printed.items() if k != "wall_seconds"} == \
        {k: v for k, v in json.loads((out / "curve.json").read_text()).items() if k != "wall_seconds"}
    assert again.stderr.count("done before") == 2 and "): training" not in again.stderr


@pytest.mark.parametrize("change, message", [
    (["--fractions", "0,0.5,1"], "--fractions: 0 is outside (0, 1]"),
    (["--fractions", "0.5,1.5"], "--fractions: 1.5 is outside (0, 1]"),
    (["--grader", "python:tests.curve.graders_for_tests:needs_missing_database"],
     "grader 'python:tests.curve.graders_for_tests:needs_missing_database' cannot run"),
    (["--grader", "nonsense"], "unknown grader 'nonsense'"),
    (["--models", "gpt-35-turbo"], "trains in a provider's cloud"),
])
def test_bad_input_is_refused_before_any_training(tmp_path, files, monkeypatch, change, message):
    train, test = files
    _refuse_training(monkeypatch)
    out = tmp_path / "curve"
    args = ["curve", "--model", "tiny-random", "--train", str(train), "--test", str(test), "--output", str(out)]
    args += ([] if "--grader" in change else ["--grader", "exact"]) + change
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2, done.output
    assert message in " ".join(done.output.split())
    assert not (out / "points").exists()


def test_a_test_file_that_overlaps_the_training_file_is_refused(tmp_path, files, monkeypatch):
    train, _ = files
    lines = train.read_text().splitlines(keepends=True)
    test = write_chat_file(tmp_path / "test.jsonl", 12, seed=99)
    test.write_text(test.read_text() + lines[5])  # one training example slipped into the test file
    _refuse_training(monkeypatch)
    done = _curve(train, test, tmp_path / "curve")
    assert done.exit_code == 2
    text = " ".join(done.output.split())
    assert f"{test} line 13: this test example is also in the training file (line 6)" in text
    assert "1 test item(s) in all are training examples" in text


def _refuse_training(monkeypatch):
    import tunesmith.training.launch as launch

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the input was bad")

    monkeypatch.setattr(launch, "start", no_training)


def test_a_curve_killed_after_its_first_point_resumes_without_retraining_it(tmp_path, files, monkeypatch):
    import tunesmith.training.launch as launch

    train, test = files
    out = tmp_path / "curve"
    args = ["curve", "--model", "tiny-random", "--train", str(train), "--test", str(test), "--grader", "exact",
            "--fractions", "0.5,1", "--output", str(out), *FAST[:2], "--max-new-tokens", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.Popen([sys.executable, "-c", "from tunesmith.cli import app; app()", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "points" / "tiny-random-n12" / "point.json"
    deadline = time.time() + 240
    while not (first.is_file() and json.loads(first.read_text()).get("status") == "done"):
        assert proc.poll() is None and time.time() < deadline, "the curve ended before its first point was done"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # killed as soon as the first point is done
    proc.wait()
    adapter = out / "points" / "tiny-random-n12" / "run" / "adapter" / "adapter_model.safetensors"
    trained_at = adapter.stat().st_mtime_ns

    calls = []
    real_start = launch.start
    monkeypatch.setattr(launch, "start", lambda target, **kw: calls.append(target) or real_start(target, **kw))
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert len(calls) == 1  # only the second point trains (or resumes)
    assert "tiny-random-n24" in str(getattr(calls[0], "output", calls[0]))
    assert adapter.stat().st_mtime_ns == trained_at
    assert "point 1/2 (tiny-random, 12 examples): done before" in done.output
    assert [p["examples"] for p in json.loads((out / "curve.json").read_text())["points"]] == [12, 24]


def test_other_models_run_at_the_two_largest_fractions_beside_the_curve(tmp_path, files, family_model_dir):
    train, test = files
    other = family_model_dir("llama3")  # a second local model: a folder, as a user's own checkpoint would be
    out = tmp_path / "curve"
    done = CliRunner().invoke(app, ["curve", "--model", "tiny-random", "--train", str(train), "--test", str(test),
                                    "--grader", "exact", "--fractions", "0.5,0.75,1", "--models", str(other),
                                    "--output", str(out), "--json", *FAST])
    assert done.exit_code == 0, done.output
    curve = json.loads(done.stdout)
    assert [(p["model"], p["examples"]) for p in curve["points"]] == [
        ("tiny-random", 12), ("tiny-random", 18), ("tiny-random", 24), (str(other), 18), (str(other), 24)]
    assert [m["model"] for m in curve["models"]] == ["tiny-random", str(other)]
    assert [p["examples"] for p in curve["models"][1]["points"]] == [18, 24]
    assert curve["fit"]["examples"] == [12, 18, 24]  # the fit is the main model's curve alone


def test_the_projection_is_timed_with_the_curves_own_recipe_and_priced_at_the_given_hour_rate():
    from tunesmith.curve.fit import CurveFit, Fit, Interval, Projection
    from tunesmith.curve.result import point_cost, projection_rows

    largest = {"examples": 1000, "n_epochs": 1, "train_seconds": 600.0, "eval_seconds": 40.0}
    fitted = CurveFit(Fit("power_law", 1.0, 5.0, 0.4, examples=[1000]), Interval(0.1, 0.05, 0.15),
                      [Projection(2000, 0.9, 0.8, 1.0)], 80, 100)
    # one epoch at 2000 examples, as at 1000: twice the training time, the same evaluation time
    assert projection_rows(fitted, largest, "smollm2-135m-instruct", 1)[0]["seconds_estimate"] == 1240
    cost, note = point_cost({"model": "smollm2-135m-instruct", "n_epochs": 1, "trained_tokens": 36_000,
                             "train_seconds": 600.0}, gpu_hour_price=3.0)
    assert cost == pytest.approx(0.5)  # 10 minutes at $3/hour
    assert "60 tokens/s" in note and "hosting" not in note and "requests-per-day" not in note
