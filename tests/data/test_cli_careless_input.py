"""`tunesmith data validate` on careless and hostile files: nothing is dropped silently, nothing ends in a
traceback, and a file that is the wrong kind altogether is named once, with the fix."""

import contextlib
import csv
import gzip
import json
import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()


def example(i, system=None, answer=None):
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": messages + [{"role": "user", "content": f"Question number {i}: what is {i} squared?"},
                                    {"role": "assistant", "content": answer or f"{i} squared is {i * i}."}]}


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def validate(path, *args):
    """(exit code, JSON report); fails on a traceback."""
    result = runner.invoke(app, ["data", "validate", str(path), "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


def issues(report, code):
    return [i for i in report["errors"] + report["warnings"] if i["code"] == code]


# --- JSON arrays inside JSONL --------------------------------------------------------------------------------


def test_lines_holding_bare_message_lists_are_each_reported(tmp_path):
    path = tmp_path / "lists.jsonl"
    path.write_text("".join(json.dumps(example(i)["messages"]) + "\n" for i in range(12)))
    code, report = validate(path)
    assert code == 1
    refused = issues(report, "data_type")
    assert [i["line"] for i in refused] == list(range(1, 13))  # every line, not the first line's messages
    assert '{"messages": [...]}' in refused[0]["message"]


def test_an_array_on_the_first_line_does_not_hide_the_lines_after_it(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps([example(0), example(1)]) + "\n"
                    + "".join(json.dumps(example(i)) + "\n" for i in range(2, 14)))
    code, report = validate(path)
    assert report["n_examples"] == 12  # lines 2-13
    assert code == 1 and [i["line"] for i in issues(report, "data_type")] == [1]


def test_data_after_a_json_array_is_reported(tmp_path):
    path = tmp_path / "array.json"
    path.write_text(json.dumps([example(i) for i in range(12)], indent=2) + "\n"
                    + json.dumps(example(12)) + "\n" + json.dumps(example(13)) + "\n")
    array_lines = len(json.dumps([example(i) for i in range(12)], indent=2).splitlines())
    code, report = validate(path)
    assert code == 1 and report["n_examples"] == 12
    [after] = issues(report, "data_after_array")
    assert after["line"] == array_lines + 1 and f"lines {array_lines + 1}-{array_lines + 2}" in after["message"]


# --- CSV -----------------------------------------------------------------------------------------------------


def test_a_csv_field_over_the_default_size_limit_keeps_every_row(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("prompt,completion\nSummarise this.,A summary.\n"
                    + "Summarise: " + "x" * (csv.field_size_limit() + 10) + ",Done.\n"
                    + "".join(f"Question {i}?,Answer {i}.\n" for i in range(12)))
    code, report = validate(path)
    assert report["n_examples"] == 14, report["errors"]
    assert code == 0


def test_csv_line_numbers_stay_right_after_blank_lines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("prompt,completion\n" + "".join(f"Question {i}?,Answer {i}.\n\n" for i in range(12))
                    + "Unanswered?,\n")
    _, report = validate(path)
    assert [i["line"] for i in issues(report, "missing_content")] == [26]  # header 1, rows on 2, 4, ..., 24; 26
    assert [i["line"] for i in issues(report, "blank_line")] == list(range(3, 26, 2))


def test_a_runaway_quote_is_reported_with_the_lines_it_swallowed(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text("prompt,completion\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(12))
                    + 'Height?,"5 feet\n' + "".join(f"Question {i}?,Answer {i}.\n" for i in range(12, 15)))
    code, report = validate(path)
    assert code == 1 and report["n_examples"] == 12
    [runaway] = issues(report, "invalid_csv")
    assert runaway["line"] == 14 and "lines 14-17" in runaway["message"]


def test_a_semicolon_separated_csv_is_read_and_named_once(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("question;answer\n" + "".join(f"Question {i}?;Answer number {i}.\n" for i in range(12)))
    code, report = validate(path)
    assert code == 0 and report["n_examples"] == 12
    [note] = issues(report, "csv_delimiter")
    assert "semicolons" in note["message"] and "Excel" in note["message"]


def test_a_missing_mapped_column_is_reported_once_not_per_row(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(12)))
    code, report = validate(path, "--columns", "prompt=question,completion=reply")
    assert code == 1
    [missing] = issues(report, "missing_field")
    assert missing["line"] == 1 and "'reply'" in missing["message"] and "question, answer" in missing["message"]


# --- fields of the wrong type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call_id", [{"id": "c1"}, ["c1"], 7])
def test_a_tool_call_id_that_is_not_text_is_an_error_not_a_traceback(tmp_path, call_id):
    record = {"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "rain"},
        {"role": "assistant", "content": "It rains."}]}
    code, report = validate(jsonl(tmp_path / "tool.jsonl", [record]))
    assert code == 1
    [bad] = issues(report, "data_type")
    assert (bad["line"], bad["field"]) == (1, "messages[2].tool_call_id")


@pytest.mark.parametrize("sender", [["human"], {"role": "human"}])
def test_a_sharegpt_sender_that_is_not_text_is_an_error_not_a_traceback(tmp_path, sender):
    record = {"conversations": [{"from": sender, "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    code, report = validate(jsonl(tmp_path / "share.jsonl", [record]), "--format", "sharegpt")
    assert code == 1
    [bad] = issues(report, "unrecognized_role")
    assert bad["field"] == "conversations[0].from"


@pytest.mark.parametrize("field, value", [("name", ["ann"]), ("function_call", {"name": ["f"]}),
                                          ("function_call", "f()")])
def test_other_message_fields_of_the_wrong_type_are_errors(tmp_path, field, value):
    record = example(0)
    record["messages"][1][field] = value
    code, report = validate(jsonl(tmp_path / "d.jsonl", [record]))
    assert code == 1 and any(e.get("field") == f"messages[1].{field}" for e in report["errors"]), report["errors"]


def test_a_lone_surrogate_is_reported_on_its_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    lines = [json.dumps(example(i)) for i in range(12)]
    lines[1] = ('{"messages": [{"role": "user", "content": "broken \\ud800 text"}, '
                '{"role": "assistant", "content": "ok"}]}')
    lines.append('{"messages": [{"role": "user", "content": "emoji \\ud83d\\ude00"}, '
                 '{"role": "assistant", "content": "A paired escape is one character."}]}')
    path.write_text("\n".join(lines) + "\n")
    code, report = validate(path)
    assert code == 1 and report["n_examples"] == 12
    [bad] = issues(report, "invalid_unicode")
    assert (bad["line"], bad["field"]) == (2, "messages[0].content")


@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"messages": ' + "1" * 5000 + "}"])
def test_json_too_deep_or_too_long_for_python_is_invalid_json_on_its_line(tmp_path, line):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(example(0)) + "\n" + line + "\n")
    code, report = validate(path)
    assert code == 1 and [i["line"] for i in issues(report, "invalid_json")] == [2]


def test_the_openai_sdk_model_dump_of_a_message_is_valid_input(tmp_path):
    chat = pytest.importorskip("openai.types.chat")
    records = []
    for i in range(12):
        reply = chat.ChatCompletionMessage(role="assistant", content=f"{i} squared is {i * i}.")
        call = chat.ChatCompletionMessage(role="assistant", content=None, tool_calls=[{
            "id": f"call_{i}", "type": "function", "function": {"name": "square", "arguments": json.dumps({"n": i})}}])
        records.append({"messages": [{"role": "user", "content": f"What is {i} squared?"}, call.model_dump(),
                                     {"role": "tool", "tool_call_id": f"call_{i}", "content": str(i * i)},
                                     reply.model_dump()]})
    assert records[0]["messages"][-1]["refusal"] is None and records[0]["messages"][-1]["tool_calls"] is None
    code, report = validate(jsonl(tmp_path / "sdk.jsonl", records))
    assert code == 0 and report["n_examples"] == 12, report["errors"]


# --- the wrong kind of file -----------------------------------------------------------------------------------


def _gzip(path, records):
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))


def _utf16(path, records):  # PowerShell: `... | Out-File train.jsonl`
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-16")


def _pretty(path, records):
    path.write_text("".join(json.dumps(r, indent=2) + "\n" for r in records))


@pytest.mark.parametrize("write, code, phrases", [
    (_gzip, "binary_file", ("gzip-compressed", "gunzip -k")),
    (_utf16, "not_utf8", ("UTF-16 text", "PowerShell", "Set-Content -Encoding utf8", "iconv")),
    (_pretty, "not_jsonl", ("pretty-printed", "lines 1-", "jq -c")),
])
def test_the_wrong_kind_of_file_is_named_once_with_its_fix(tmp_path, write, code, phrases):
    path = tmp_path / "train.jsonl"
    write(path, [example(i) for i in range(200)])
    exit_code, report = validate(path)
    assert exit_code == 1
    assert report["counts"] == {code: 1, "too_few_examples": 1}  # once, not once per line
    [issue] = issues(report, code)
    assert all(p in issue["message"] for p in phrases), issue["message"]
    human = runner.invoke(app, ["data", "validate", str(path)])
    assert human.exit_code == 1 and human.output.count(phrases[0]) == 1


def test_a_file_the_process_may_not_read_is_one_line_and_exit_2():
    """A real EACCES from the kernel: as root, the check runs with the effective user `nobody`."""
    import tunesmith.data.validate  # noqa: F401  (imported before losing access to the interpreter's files)
    import tunesmith.models  # noqa: F401

    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        path = jsonl(folder / "secret.jsonl", [example(i) for i in range(12)])
        path.chmod(0)
        with _as_nobody():
            results = [runner.invoke(app, ["data", command, str(path)]) for command in ("validate", "stats")]
        for result in results:
            assert result.exit_code == 2, result.output
            assert not isinstance(result.exception, PermissionError)
            assert "cannot be read: Permission denied" in result.output and "Traceback" not in result.output
    finally:
        path.unlink()
        folder.rmdir()


@contextlib.contextmanager
def _as_nobody():
    if os.geteuid() != 0:  # chmod 0 already keeps an ordinary user out
        yield
        return
    try:
        os.setegid(65534)
        os.seteuid(65534)
    except PermissionError:  # a root without CAP_SETUID (some rootless containers)
        os.setegid(0)
        pytest.skip("cannot switch to the user nobody here, and root reads any file")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_directory_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["data", "validate", str(tmp_path)])
    assert result.exit_code == 2 and "not a file" in result.output


# --- near duplicates and repeated warnings --------------------------------------------------------------------

TABLES = ("orders", "users", "products", "invoices", "shipments", "payments")
SCHEMA = "You translate questions into SQLite for this database.\n" + "\n".join(
    f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT, amount REAL, weight REAL, "
    f"score INTEGER, created_at TEXT, owner_id INTEGER REFERENCES users(id));" for t in TABLES * 2)
COLUMNS = ("amount", "weight", "score", "region", "created_at")
TEMPLATES = [  # (question, SQL) with the table, a column and a value to fill in
    ("How many {t} have {c} above {v}?", "SELECT COUNT(*) FROM {t} WHERE {c} > {v};"),
    ("List every {t} name whose {c} equals {v}.", "SELECT name FROM {t} WHERE {c} = {v};"),
    ("What is the total {c} of {t} owned by user {v}?", "SELECT SUM({c}) FROM {t} WHERE owner_id = {v};"),
    ("Show the {v} newest {t}, with their {c}.", "SELECT name, {c} FROM {t} ORDER BY created_at DESC LIMIT {v};"),
    ("Average {c} per region among {t} below id {v}?",
     "SELECT region, AVG({c}) FROM {t} WHERE id < {v} GROUP BY region;"),
    ("Which {t} rank top {v} by {c}?", "SELECT name FROM {t} ORDER BY {c} DESC LIMIT {v};"),
    ("Delete nothing; just count distinct {c} values in {t} after {v}.",
     "SELECT COUNT(DISTINCT {c}) FROM {t} WHERE id > {v};"),
    ("Give me the largest {c} among {t} of owner {v}.", "SELECT MAX({c}) FROM {t} WHERE owner_id = {v};"),
    ("Are there {t} with {c} missing and id under {v}?",
     "SELECT EXISTS(SELECT 1 FROM {t} WHERE {c} IS NULL AND id < {v});"),
    ("Smallest {c} seen in {t}, ignoring rows past {v}?", "SELECT MIN({c}) FROM {t} WHERE id <= {v};"),
]


def text_to_sql_set():
    """60 different questions over one long schema in the system prompt (the schema-in-the-prompt pattern)."""
    records = []
    for k in range(60):
        j, n = k % 10, k // 10
        slots = {"t": TABLES[n], "c": COLUMNS[(n + j) % 5], "v": 100 + 37 * k}
        question, sql = TEMPLATES[j]
        records.append({"messages": [{"role": "system", "content": SCHEMA},
                                     {"role": "user", "content": question.format(**slots)},
                                     {"role": "assistant", "content": sql.format(**slots)}]})
    return records


def test_a_shared_schema_in_the_system_prompt_is_not_a_near_duplicate(tmp_path):
    records = text_to_sql_set()
    copy = json.loads(json.dumps(records[3]))
    copy["messages"][1]["content"] = copy["messages"][1]["content"].replace("total", "overall") + " Thanks."
    path = jsonl(tmp_path / "sql.jsonl", records + [copy])
    code, report = validate(path)
    assert code == 0
    assert [(i["line"], i["message"].split("%")[0].isdigit()) for i in issues(report, "near_duplicate")] == [(61, True)]
    deduped = runner.invoke(app, ["data", "dedupe", str(path), str(tmp_path / "d.jsonl")])
    assert deduped.exit_code == 0 and "kept 60, dropped 1" in deduped.output


def test_repeated_warnings_collapse_into_a_summary_line(tmp_path):
    path = jsonl(tmp_path / "short.jsonl", [example(i, answer="ok") for i in range(30)])
    human = runner.invoke(app, ["data", "validate", str(path)])
    assert human.exit_code == 0
    assert human.output.count("short_answer") == 3  # two rows, then one summary row
    assert "… and 28 more" in human.output and "3, 4, 5, 6, 7, …" in human.output
    code, report = validate(path)
    assert len(issues(report, "short_answer")) == 30  # --json keeps every line
    [summary] = [s for s in report["summary"] if s["code"] == "short_answer"]
    assert summary["count"] == 30 and summary["first_lines"] == [1, 2, 3, 4, 5]


# --- random records: every line is an example or an error, never a traceback -----------------------------------

ODD_VALUES = [None, True, 0, 1, 2.5, "", "x", "assistant", "tool", [], ["a"], {}, {"a": 1}, "c",
              {"name": "f", "arguments": "{}"}, [{"type": "text", "text": "hi"}], [{"type": "image_url"}],
              [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]]
MESSAGE_KEYS = ["role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight", "refusal"]


def random_record(rng):
    def message():
        m = {"role": rng.choice(["user", "assistant", "tool", "system", "function", "x", None, ["user"]]),
             "content": rng.choice(["hello there", None, "", 3, [{"type": "text", "text": "t"}], {"a": 1}])}
        m.update({rng.choice(MESSAGE_KEYS): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 3))})
        return m

    kind = rng.random()
    if kind < 0.6:
        record = {"messages": [message() for _ in range(rng.randint(0, 5))]}
        record.update({k: rng.choice(ODD_VALUES) for k in ("tools", "functions") if rng.random() < 0.2})
        return record
    if kind < 0.8:
        return {"conversations": [{"from": rng.choice(["human", "gpt", "function_call", "observation", ["x"], None]),
                                   "value": rng.choice(ODD_VALUES)} for _ in range(rng.randint(0, 4))]}
    if kind < 0.9:
        return {"instruction": rng.choice(ODD_VALUES), "output": rng.choice(ODD_VALUES),
                "history": rng.choice(ODD_VALUES)}
    return rng.choice(ODD_VALUES)


@pytest.mark.parametrize("seed", range(4))
def test_random_records_each_become_an_example_or_an_error(tmp_path, seed):
    import random

    rng = random.Random(seed)
    path = jsonl(tmp_path / "random.jsonl", [random_record(rng) for _ in range(60)])
    for fmt in ("auto", "sharegpt", "alpaca"):
        _, report = validate(path, "--format", fmt)
        error_lines = {e["line"] for e in report["errors"] if e["line"] is not None}
        assert report["n_examples"] + len(error_lines) == 60, fmt
