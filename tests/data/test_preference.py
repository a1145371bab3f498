"""Preference data (DPO): OpenAI's format and TRL's, read into pairs and validated with line-numbered codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.data.formats import DataError, detect_format, read_conversations
from tunesmith.data.preference import read_pairs
from tunesmith.data.validate import validate_file

runner = CliRunner()


def openai_pair(i: int) -> dict:
    return {"input": {"messages": [{"role": "system", "content": "Be kind."},
                                   {"role": "user", "content": f"Is {i} even?"},
                                   {"role": "assistant", "content": "Let me think."},
                                   {"role": "user", "content": "Well?"}],
                      "tools": []},
            "preferred_output": [{"role": "assistant", "content": f"Yes, {i * 2} is even, thanks for asking."}],
            "non_preferred_output": [{"role": "assistant", "content": f"Whatever, {i * 2}."}]}


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_openai_pairs_train_only_the_outputs(tmp_path):
    pairs = read_pairs(write(tmp_path / "p.jsonl", [openai_pair(i) for i in range(3)]))
    assert detect_format(tmp_path / "p.jsonl") == "preference"
    first = pairs[0]
    assert first.n_prompt == 4
    assert [m.trained for m in first.chosen.messages] == [False, False, False, False, True]  # prompt's turn: weight 0
    assert first.chosen.messages[-1].content.startswith("Yes, 0") and first.rejected.messages[-1].content == "Whatever, 0."
    assert first.chosen.messages[:4] == first.rejected.messages[:4]


@pytest.mark.parametrize("record", [
    {"prompt": "Is 4 even?", "chosen": "Yes.", "rejected": "No."},
    {"prompt": [{"role": "user", "content": "Is 4 even?"}], "chosen": [{"role": "assistant", "content": "Yes."}],
     "rejected": [{"role": "assistant", "content": "No."}]},
    {"chosen": [{"role": "user", "content": "Is 4 even?"}, {"role": "assistant", "content": "Yes."}],
     "rejected": [{"role": "user", "content": "Is 4 even?"}, {"role": "assistant", "content": "No."}]},
])
def test_trl_pairs_plain_conversational_and_implicit_prompt(tmp_path, record):
    (pair,) = read_pairs(write(tmp_path / "p.jsonl", [record]))
    assert [m.role for m in pair.chosen.messages] == ["user", "assistant"]
    assert pair.chosen.messages[0].content == "Is 4 even?"
    assert (pair.chosen.messages[1].content, pair.rejected.messages[1].content) == ("Yes.", "No.")


def test_validate_names_line_code_and_field(tmp_path):
    rows = [openai_pair(i) for i in range(12)]
    rows[1] = {**openai_pair(1), "non_preferred_output": [{"role": "user", "content": "hi"}]}
    rows[3] = {k: v for k, v in openai_pair(3).items() if k != "preferred_output"}
    rows[5] = {**openai_pair(5), "input": {"messages": []}}
    bad = openai_pair(7)
    bad["preferred_output"][0]["content"] = 42
    rows[7] = bad
    rows[9] = {**openai_pair(9), "non_preferred_output": openai_pair(9)["preferred_output"]}
    rows.append("{not json")
    report = validate_file(write(tmp_path / "p.jsonl", rows), method="dpo")
    errors = {(e.line, e.code, e.field) for e in report.errors}
    assert {(2, "invalid_preference_output", "non_preferred_output[0].role"),
            (4, "missing_preferred_output", "preferred_output"),
            (6, "missing_preference_input", "input.messages"),
            (8, "missing_content", "preferred_output[0].content"),
            (13, "invalid_json", None)} <= errors
    assert (10, "identical_preference_outputs") in {(w.line, w.code) for w in report.warnings}
    assert report.n_examples == 8 and report.format == "preference"


def test_the_wrong_kind_of_data_for_the_method_is_an_error(tmp_path):
    pairs = write(tmp_path / "p.jsonl", [openai_pair(i) for i in range(12)])
    assert validate_file(pairs, method="dpo").ok
    assert [e.code for e in validate_file(pairs, method="lora").errors] == ["wrong_data_kind"]
    with pytest.raises(DataError, match="--method dpo"):
        read_conversations(pairs)


def test_cli_validate_preference_file(tmp_path):
    rows = [openai_pair(i) for i in range(12)]
    rows[4] = {**openai_pair(4), "preferred_output": [{"role": "tool", "content": "x"}]}
    result = runner.invoke(app, ["data", "validate", str(write(tmp_path / "p.jsonl", rows)), "--model",
                                 "tiny-random", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "preference" and report["n_examples"] == 11
    assert [(e["line"], e["code"]) for e in report["errors"]] == [(5, "invalid_preference_output")]
    clean = runner.invoke(app, ["data", "validate", str(write(tmp_path / "ok.jsonl", [openai_pair(i) for i in range(12)])),
                                "--model", "tiny-random"])
    assert clean.exit_code == 0, clean.output


def test_assess_says_style_and_tone_is_answered_by_preference_data(tmp_path):
    from tunesmith.assess.readiness import assess

    chat = write(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": f"Question {i} about orders?"},
                                                      {"role": "assistant", "content": f"Answer {i}, kindly."}]}
                                        for i in range(12)])
    result = assess(use_case="Reply to customer e-mails in our friendly brand tone and voice, never curt or rude",
                    train=chat, model="tiny-random")
    why = " ".join(next(f for f in result.findings if f.question.startswith("Why")).reasons)
    assert "preference data" in why and "--method dpo" in why
