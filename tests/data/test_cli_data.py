"""`tunesmith data …`: exit codes, the JSON report, tables, and clear errors for bad input."""

import json
from pathlib import Path

from typer.testing import CliRunner

from tunesmith.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_validate_defects_exits_1_and_reports_each_code_on_its_line():
    result = runner.invoke(app, ["data", "validate", str(FIXTURES / "defects.jsonl"), "--model", "tiny-random",
                                 "--validation", str(FIXTURES / "validation_overlap.jsonl"), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["n_examples"] == 9
    errors = {(e["line"], e["code"]) for e in report["errors"]}
    assert {(2, "invalid_json"), (3, "not_utf8"), (6, "message_missing_key"), (15, "duplicate_example"),
            (17, "too_many_tokens"), (1, "train_validation_overlap")} <= errors
    assert {(19, "personal_data"), (16, "near_duplicate")} <= {(w["line"], w["code"]) for w in report["warnings"]}
    assert report["stats"]["tokens"]["max"] > 2048


def test_validate_clean_file_exits_0_and_prints_the_stats_table():
    result = runner.invoke(app, ["data", "validate", str(FIXTURES / "clean.jsonl"), "--model", "tiny-random"])
    assert result.exit_code == 0, result.output
    assert "per-example statistics" in result.output and "billing tokens" in result.output
    assert "no errors" in result.output


def test_validate_human_output_lists_errors_in_a_table():
    result = runner.invoke(app, ["data", "validate", str(FIXTURES / "defects.jsonl")])
    assert result.exit_code == 1
    assert "invalid_json" in result.output and "tool_message_without_call" in result.output


def test_bad_paths_and_arguments_exit_2(tmp_path):
    missing = runner.invoke(app, ["data", "validate", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad_columns = runner.invoke(app, ["data", "validate", str(FIXTURES / "clean.jsonl"), "--columns", "prompt"])
    assert bad_columns.exit_code == 2 and "TARGET=COLUMN" in bad_columns.output
    bad_format = runner.invoke(app, ["data", "validate", str(FIXTURES / "clean.jsonl"), "--format", "yaml"])
    assert bad_format.exit_code == 2 and "unknown data format" in bad_format.output
    bad_model = runner.invoke(app, ["data", "validate", str(FIXTURES / "clean.jsonl"), "--model", "no-such-model"])
    assert bad_model.exit_code == 2 and "unknown model" in bad_model.output


def test_csv_with_column_mapping_validates(tmp_path):
    path = tmp_path / "qa.csv"
    rows = "".join(f'"What is {i} + {i}?","{2 * i}, since {i} + {i} = {2 * i}.",Be exact.\n' for i in range(12))
    path.write_text("question,answer,sys\n" + rows)
    result = runner.invoke(app, ["data", "validate", str(path), "--columns",
                                 "prompt=question,completion=answer,system=sys", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["format"] == "csv"


def test_stats_convert_split_and_dedupe(tmp_path):
    stats = runner.invoke(app, ["data", "stats", str(FIXTURES / "clean.jsonl"), "--model", "tiny-random", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["default_n_epochs"] == 9

    sharegpt = tmp_path / "clean.sharegpt.jsonl"
    converted = runner.invoke(app, ["data", "convert", str(FIXTURES / "clean.jsonl"), str(sharegpt),
                                    "--to", "sharegpt"])
    assert converted.exit_code == 0 and "wrote 12 examples" in converted.output
    assert "conversations" in json.loads(sharegpt.read_text().splitlines()[0])

    out = tmp_path / "split"
    split = runner.invoke(app, ["data", "split", str(sharegpt), "--validation-fraction", "0.25", "--seed", "0",
                                "--out-dir", str(out)])
    assert split.exit_code == 0, split.output
    assert len((out / "validation.jsonl").read_text().splitlines()) == 3
    assert len((out / "train.jsonl").read_text().splitlines()) == 9

    deduped = runner.invoke(app, ["data", "dedupe", str(FIXTURES / "clean.jsonl"), str(tmp_path / "d.jsonl")])
    assert deduped.exit_code == 0 and "dropped 0" in deduped.output

    refused = runner.invoke(app, ["data", "convert", str(FIXTURES / "defects.jsonl"), str(tmp_path / "x.jsonl")])
    assert refused.exit_code == 2 and ":2" in refused.output
