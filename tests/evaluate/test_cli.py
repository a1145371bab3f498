"""`tunesmith eval` + `tunesmith compare` end to end on the tiny random model, offline."""

import json

from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.evaluate.run import evaluate, item_ids, load_conversations

PREDICTION_KEYS = {"id", "messages", "reference", "output", "scores", "details", "latency_s", "prompt_tokens",
                   "completion_tokens"}
SUMMARY_KEYS = {"model", "strategy", "data", "n", "graders", "prompt_tokens_mean", "completion_tokens_mean",
                "created_at"}


def write_test_file(path, n=8):
    rows = [{"messages": [{"role": "system", "content": "Reply with the number only."},
                          {"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_then_compare_from_the_command_line(tmp_path):
    data = write_test_file(tmp_path / "test.jsonl")
    runner = CliRunner()
    common = ["--model", "tiny-random", "--data", str(data), "--grader", "exact", "--grader", "chrf",
              "--grader", "regex:\\d", "--max-new-tokens", "8", "--batch-size", "4"]
    first = runner.invoke(app, ["eval", *common, "--output", str(tmp_path / "zero")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["eval", *common, "--strategy", "few-shot:2", "--pool", str(data),
                                 "--output", str(tmp_path / "few")])
    assert second.exit_code == 0, second.output

    summary = json.loads((tmp_path / "few" / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys() and summary["n"] == 8 and summary["strategy"] == "few-shot:2"
    for stats in summary["graders"].values():
        assert {"mean", "pass_rate", "ci95", "n"} <= stats.keys() and stats["n"] == 8
    lines = (tmp_path / "few" / "predictions.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert len(predictions) == 8 and all(PREDICTION_KEYS <= p.keys() for p in predictions)
    assert len([m for m in predictions[0]["messages"] if m["role"] == "assistant"]) == 2  # the two examples
    assert all(0 < p["completion_tokens"] <= 8 for p in predictions)

    compared = runner.invoke(app, ["compare", str(tmp_path / "zero"), str(tmp_path / "few"),
                                   "--output", str(tmp_path / "report")])
    assert compared.exit_code == 0, compared.output
    assert "TooFewSamples" in compared.output  # 8 items is below the minimum for a verdict
    assert (tmp_path / "report" / "report.md").read_text().startswith("# Evaluation comparison")
    assert "<svg" in (tmp_path / "report" / "report.html").read_text()


def test_eval_reports_bad_grader_and_strategy_as_errors(tmp_path):
    data = write_test_file(tmp_path / "test.jsonl", n=2)
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--grader", "fuzzy"])
    assert bad.exit_code == 2 and "unknown grader" in bad.output
    bad = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--grader", "exact",
                              "--strategy", "few-shot:2"])
    assert bad.exit_code == 2 and "--pool" in bad.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(data.read_text() + "{not json\n")
    bad = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(broken), "--grader", "exact"])
    assert bad.exit_code == 2 and "broken.jsonl" in bad.output and "3" in bad.output


def test_item_ids_are_stable_under_limit_and_distinct_for_duplicates(tmp_path, tiny):
    data = write_test_file(tmp_path / "test.jsonl", n=4)
    conversations = load_conversations(data)
    assert item_ids(conversations[:2]) == item_ids(conversations)[:2]
    doubled = item_ids(conversations[:1] * 2)
    assert doubled[1] == doubled[0] + "-2"
    result = evaluate("tiny-random", data, ["exact"], output_dir=tmp_path / "out", limit=3, max_new_tokens=2,
                      loaded=tiny, system_prompt="Say a number.")
    assert [it.id for it in result.items] == item_ids(conversations)[:3]
    assert result.items[0].messages[0] == {"role": "system", "content": "Say a number."}
