"""Pairing two evals by what their items ask and expect: prompts may differ, files and graders must not."""

import json

from typer.testing import CliRunner

from tests.evaluate.fixtures import write_questions, write_scored_eval
from tunesmith.artifacts.eval_dir import read_eval_run
from tunesmith.cli import app
from tunesmith.evaluate.compare import compare
from tunesmith.evaluate.run import evaluate, load_conversations

LONG_PROMPT = "You add numbers. " + " ".join(f"Rule {i}: answer with digits only." for i in range(40))
SHORT_PROMPT = "Add."
BASELINE_RIGHT = set(range(12))  # 12 of 30
TUNED_RIGHT = set(range(2, 30))  # 28 of 30: 18 fixed (12..29), 2 broken (0, 1)


def _same_questions(tmp_path):
    return write_questions(tmp_path / "test.jsonl", LONG_PROMPT), write_questions(tmp_path / "test_short.jsonl",
                                                                                 SHORT_PROMPT)


def test_same_questions_with_other_system_prompts_and_few_shot_pair_fully(tmp_path):
    long_file, short_file = _same_questions(tmp_path)
    pool = load_conversations(write_questions(tmp_path / "train.jsonl", LONG_PROMPT, n=10, offset=100))
    zero = write_scored_eval(tmp_path / "zero", long_file, BASELINE_RIGHT)
    few = write_scored_eval(tmp_path / "few", long_file, BASELINE_RIGHT, strategy="few-shot:3", pool=pool)
    tuned = write_scored_eval(tmp_path / "tuned", short_file, TUNED_RIGHT, model="tuned")
    assert not set(read_eval_run(zero).predictions) & set(read_eval_run(tuned).predictions)  # ids differ

    result = compare([zero, few, tuned])
    few_t, tuned_t = result.treatments
    assert len(few_t.pairing.keys) == 30 and few_t.graders[0].verdict == "Inconclusive"  # the same answers
    assert len(tuned_t.pairing.keys) == 30 and not tuned_t.pairing.only_in_baseline and not tuned_t.problem
    exact = tuned_t.graders[0]
    assert exact.verdict == "Improved" and len(exact.fixed) == 18 and len(exact.broken) == 2
    assert exact.delta == (28 - 12) / 30
    assert result.problems == []
    # the cost argument beside the accuracy: the short prompt sends far fewer tokens
    assert tuned_t.treatment_prompt_tokens < tuned_t.baseline_prompt_tokens / 10
    assert 0.9 < tuned_t.prompt_token_saving < 1.0
    by_id = compare([zero, tuned], pair_by="id").treatments[0]  # the old pairing finds nothing in common
    assert by_id.pairing.keys == [] and by_id.graders == [] and "different test files" in by_id.problem


def test_cli_prints_pairing_verdict_and_prompt_token_saving(tmp_path):
    long_file, short_file = _same_questions(tmp_path)
    zero = write_scored_eval(tmp_path / "zero", long_file, BASELINE_RIGHT)
    tuned = write_scored_eval(tmp_path / "tuned", short_file, TUNED_RIGHT, model="tuned")
    out = CliRunner().invoke(app, ["compare", str(zero), str(tuned), "--output", str(tmp_path / "report")])
    assert out.exit_code == 0, out.output
    assert "paired 30 of 30 baseline items and 30 of 30 items of this run (by question)" in out.output
    assert "Improved" in out.output
    t = compare([zero, tuned]).treatments[0]
    saving = f"{t.baseline_prompt_tokens:.0f} → {t.treatment_prompt_tokens:.0f} ({t.prompt_token_saving:.1%} fewer)"
    assert saving in out.output
    assert saving in (tmp_path / "report" / "report.md").read_text()
    assert saving in (tmp_path / "report" / "report.html").read_text()
    saved = json.loads((tmp_path / "report" / "comparison.json").read_text())["treatments"][0]
    assert saved["paired"] == 30 and saved["problem"] is None and saved["prompt_token_saving"] > 0.9


def test_evals_of_different_files_do_not_pair_and_exit_1(tmp_path):
    first = write_scored_eval(tmp_path / "a", write_questions(tmp_path / "a.jsonl", SHORT_PROMPT), BASELINE_RIGHT)
    other = write_scored_eval(tmp_path / "b", write_questions(tmp_path / "b.jsonl", SHORT_PROMPT, offset=50),
                              TUNED_RIGHT)
    out = CliRunner().invoke(app, ["compare", str(first), str(other), "--output", str(tmp_path / "report")])
    assert out.exit_code == 1, out.output
    assert "paired 0 of 30 baseline items and 0 of 30 items of this run" in out.output
    assert "does not pair" in out.output and "different test files" in out.output
    assert "Improved" not in out.output and "Inconclusive" not in out.output  # no verdict
    assert "no verdict" in (tmp_path / "report" / "report.md").read_text()


def test_half_the_items_or_fewer_is_not_a_comparison_but_a_limit_is(tmp_path):
    data = write_questions(tmp_path / "test.jsonl", SHORT_PROMPT)
    whole = write_scored_eval(tmp_path / "whole", data, BASELINE_RIGHT)
    limited = write_scored_eval(tmp_path / "limited", write_questions(tmp_path / "first.jsonl", SHORT_PROMPT, n=12),
                                TUNED_RIGHT)  # like --limit 12: all 12 are in the baseline
    t = compare([whole, limited]).treatments[0]
    assert t.problem is None and len(t.pairing.keys) == 12 and len(t.pairing.only_in_baseline) == 18
    assert "only in the baseline: " in t.pairing.describe()
    mixed = write_scored_eval(tmp_path / "mixed", write_questions(tmp_path / "mixed.jsonl", SHORT_PROMPT, offset=20),
                              TUNED_RIGHT)  # 10 of 30 shared
    assert "fewer than half" in compare([whole, mixed]).treatments[0].problem


def test_grader_spellings_of_one_file_meet_and_other_files_do_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "geo.sqlite").write_bytes(b"")
    (tmp_path / "other.sqlite").write_bytes(b"")
    data = write_questions(tmp_path / "test.jsonl", SHORT_PROMPT)
    base = write_scored_eval(tmp_path / "base", data, BASELINE_RIGHT, graders=["sql-exec:./geo.sqlite"])
    tuned = write_scored_eval(tmp_path / "tuned", data, TUNED_RIGHT, graders=["sql-exec:geo.sqlite"])
    g = compare([base, tuned]).treatments[0].graders
    assert [(x.grader, x.treatment_grader, x.verdict) for x in g] == [
        ("sql-exec:./geo.sqlite", "sql-exec:geo.sqlite", "Improved")]
    elsewhere = write_scored_eval(tmp_path / "elsewhere", data, TUNED_RIGHT, graders=["sql-exec:other.sqlite"])
    out = CliRunner().invoke(app, ["compare", str(base), str(elsewhere), "-o", str(tmp_path / "r")])
    assert out.exit_code == 1 and "share no grader" in out.output


def test_a_recorded_grader_target_wins_over_the_folder_compare_runs_in(tmp_path, monkeypatch, tiny):
    """`eval` records the file a grader read, so compare elsewhere still matches (or refuses) by that file."""
    import sqlite3

    for name in ("geo.sqlite", "sub/geo.sqlite"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sqlite3.connect(tmp_path / name).close()
    data = write_questions(tmp_path / "test.jsonl", SHORT_PROMPT, n=2)
    monkeypatch.chdir(tmp_path)
    evaluate("tiny-random", data, ["sql-exec:./geo.sqlite"], output_dir=tmp_path / "a", max_new_tokens=2, loaded=tiny)
    monkeypatch.chdir(tmp_path / "sub")
    evaluate("tiny-random", data, ["sql-exec:geo.sqlite"], output_dir=tmp_path / "b", max_new_tokens=2, loaded=tiny)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["graders"]["sql-exec:./geo.sqlite"]["target"] == str((tmp_path / "geo.sqlite").resolve())
    monkeypatch.chdir(tmp_path)  # here `geo.sqlite` would resolve to the first file: the recorded one is sub/
    assert "share no grader" in compare([tmp_path / "a", tmp_path / "b"]).treatments[0].problem


def test_eval_writes_the_same_pairing_key_whatever_the_prompt(tmp_path, tiny):
    long_file, short_file = _same_questions(tmp_path)
    pool = tmp_path / "pool.jsonl"
    write_questions(pool, LONG_PROMPT, n=6, offset=100)
    common = {"max_new_tokens": 2, "loaded": tiny, "limit": 4}
    evaluate("tiny-random", long_file, ["exact"], output_dir=tmp_path / "long", **common)
    evaluate("tiny-random", long_file, ["exact"], output_dir=tmp_path / "few", strategy="few-shot:2",
             pool_path=pool, **common)
    evaluate("tiny-random", short_file, ["exact"], output_dir=tmp_path / "short", **common)
    rows = {name: [json.loads(line) for line in (tmp_path / name / "predictions.jsonl").read_text().splitlines()]
            for name in ("long", "few", "short")}
    assert list(rows["long"][0])[:2] == ["id", "key"]  # the key sits beside the id
    keys = {name: [r["key"] for r in rs] for name, rs in rows.items()}
    assert keys["long"] == keys["few"] == keys["short"] and len(set(keys["long"])) == 4
    assert [r["id"] for r in rows["long"]] != [r["id"] for r in rows["short"]]
    # an old eval dir (written before the key) gets the same key back from its stored messages
    for name in ("few", "short"):
        (tmp_path / name / "predictions.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k != "key"}) + "\n" for r in rows[name]))
        assert [r["key"] for r in read_eval_run(tmp_path / name).rows] == keys["long"]


def test_old_eval_dirs_without_keys_still_compare(tmp_path):
    long_file, short_file = _same_questions(tmp_path)
    pool = load_conversations(write_questions(tmp_path / "train.jsonl", LONG_PROMPT, n=10, offset=100))
    old_few = write_scored_eval(tmp_path / "old-few", long_file, BASELINE_RIGHT, strategy="few-shot:2", pool=pool,
                                keep_keys=False)
    assert '"key"' not in (old_few / "predictions.jsonl").read_text()
    new = write_scored_eval(tmp_path / "new", short_file, TUNED_RIGHT)
    t = compare([old_few, new]).treatments[0]
    assert len(t.pairing.keys) == 30 and t.graders[0].verdict == "Improved"
    old_same = write_scored_eval(tmp_path / "old-same", long_file, TUNED_RIGHT, keep_keys=False)
    out = CliRunner().invoke(app, ["compare", str(old_few), str(old_same), "--pair-by", "id", "-o",
                                   str(tmp_path / "r")])
    assert out.exit_code == 0 and "paired 30 of 30" in out.output and "Improved" in out.output
    out = CliRunner().invoke(app, ["compare", str(old_few), str(new), "--pair-by", "nearest"])
    assert out.exit_code == 2 and "--pair-by" in out.output


def test_assess_meets_graders_by_kind_and_target_as_compare_does(tmp_path, monkeypatch):
    """Two baselines graded against one database spelled two ways: `assess` finds the one metric they share
    and picks the best baseline by it, as `compare` would pair them; another database is another grader."""
    from tunesmith.assess.readiness import assess

    monkeypatch.chdir(tmp_path)
    (tmp_path / "geo.sqlite").write_bytes(b"")
    (tmp_path / "other.sqlite").write_bytes(b"")
    data = write_questions(tmp_path / "test.jsonl", LONG_PROMPT)
    pool = load_conversations(write_questions(tmp_path / "train.jsonl", LONG_PROMPT, n=10, offset=100))
    zero = write_scored_eval(tmp_path / "zero", data, set(range(6)), graders=["sql-exec:./geo.sqlite"])
    few = write_scored_eval(tmp_path / "few", data, BASELINE_RIGHT, strategy="few-shot:3", pool=pool,
                            graders=["sql-exec:geo.sqlite"])
    result = assess(baselines=[zero, few], model="tiny-random")
    assert result.metric == "sql-exec:./geo.sqlite"
    assert [b["mean"] for b in result.baselines] == [6 / 30, 12 / 30]
    tried = next(f for f in result.findings if f.question == "What has been tried?")
    assert "the best, few-shot:3" in tried.summary and "0.4" in tried.summary, tried.summary

    named = assess(baselines=[zero, few], model="tiny-random", metric="sql-exec:geo.sqlite", target=0.9)
    assert [b["mean"] for b in named.baselines] == [6 / 30, 12 / 30]
    elsewhere = write_scored_eval(tmp_path / "elsewhere", data, TUNED_RIGHT, strategy="few-shot:3", pool=pool,
                                  graders=["sql-exec:other.sqlite"])
    assert assess(baselines=[zero, elsewhere], model="tiny-random").metric is None
