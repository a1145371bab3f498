"""Every grader on crafted outputs, including malformed ones."""

import json
import sqlite3
import sys

import pytest

from tunesmith.evaluate.graders import GraderError, judge_score, normalize_text, parse_grader


def score(spec: str, output: str, reference: str | None = "ref") -> float:
    return parse_grader(spec).score(output, reference).value


def test_exact_ignores_only_surrounding_whitespace():
    assert score("exact", "  42\n", "42") == 1.0
    assert score("exact", "42.", "42") == 0.0
    assert score("exact", "Paris", "paris") == 0.0
    assert score("exact", "anything", None) == 0.0


def test_normalized_forgives_case_punctuation_and_spacing():
    assert normalize_text("  Hello,   WORLD! ") == "hello world"
    assert score("normalized", "Hello,   WORLD!", "hello world") == 1.0
    assert score("normalized", "hello there world", "hello world") == 0.0


def test_contains_is_case_sensitive_substring_and_needs_a_reference():
    assert score("contains", "The answer is Paris.", "Paris") == 1.0
    assert score("contains", "the answer is paris", "Paris") == 0.0
    assert parse_grader("contains").score("x", "  ").detail == "no reference answer"


def test_regex_searches_and_rejects_bad_patterns():
    grader = parse_grader(r"regex:^SELECT\b")
    assert grader.score("SELECT * FROM t", None).value == 1.0
    assert grader.score("select * from t", None).value == 0.0
    with pytest.raises(GraderError, match="invalid pattern"):
        parse_grader("regex:(unclosed")


def test_json_accepts_fenced_json_and_reports_where_it_breaks():
    assert score("json", '{"a": 1}') == 1.0
    assert score("json", '```json\n{"a": [1, 2]}\n```') == 1.0
    bad = parse_grader("json").score('{"a": 1,\n "b": }', None)
    assert bad.value == 0.0 and "line 2" in bad.detail
    assert score("json", "") == 0.0


def test_json_schema_validates_and_names_the_violation(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"],
                                  "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}))
    grader = parse_grader(f"json-schema:{schema}")
    assert grader.score('{"name": "Ada", "age": 36}', None).value == 1.0
    wrong = grader.score('{"name": "Ada", "age": "old"}', None)
    assert wrong.value == 0.0 and "age" in wrong.detail
    assert grader.score("not json", None).detail.startswith("invalid JSON")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(GraderError, match="line 1"):
        parse_grader(f"json-schema:{broken}")
    with pytest.raises(GraderError, match="cannot read"):
        parse_grader(f"json-schema:{tmp_path / 'missing.json'}")


def test_similarity_graders_order_outputs_sensibly():
    ref = "the cat sat on the mat today"
    for spec in ("bleu", "chrf", "rouge-l"):
        same, close, far = score(spec, ref, ref), score(spec, "the cat sat on a mat today", ref), score(spec, "xyz", ref)
        assert same == pytest.approx(1.0)
        assert far < close < same, spec
        assert score(spec, "", ref) == 0.0
    assert not parse_grader("bleu").binary and parse_grader("exact").binary


def test_python_grader_calls_the_function_and_survives_its_crashes(tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text(
        "def length_ok(output, reference):\n    return len(output) <= 5, 'short enough'\n"
        "def boom(output, reference):\n    raise RuntimeError('bad grader')\n"
        "def too_big(output, reference):\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_checks", None)
    ok = parse_grader("python:my_checks:length_ok").score("abc", None)
    assert ok.value == 1.0 and ok.detail == "short enough"
    crashed = parse_grader("python:my_checks:boom").score("abc", None)
    assert crashed.value == 0.0 and "RuntimeError" in crashed.detail
    assert "outside 0–1" in parse_grader("python:my_checks:too_big").score("x", None).detail
    with pytest.raises(GraderError, match="no function"):
        parse_grader("python:my_checks:missing")
    with pytest.raises(GraderError, match="MODULE:FUNCTION"):
        parse_grader("python:justmodule")


@pytest.fixture
def shop_db(tmp_path):
    db = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE items(id INTEGER, name TEXT, price REAL);"
        "INSERT INTO items VALUES (1,'pen',1.5),(2,'book',12.0),(3,'lamp',30.0);"
    )
    conn.commit()
    conn.close()
    return db


def test_sql_exec_compares_result_sets_not_text(shop_db):
    grader = parse_grader(f"sql-exec:{shop_db}")
    ref = "SELECT name FROM items WHERE price > 10"
    assert grader.score("SELECT name FROM items WHERE price >= 12", ref).value == 1.0
    assert grader.score("```sql\nselect name from items where price > 10\n```", ref).value == 1.0
    # row order only matters when the reference asks for one
    assert grader.score("SELECT name FROM items WHERE price > 10 ORDER BY name DESC", ref).value == 1.0
    ordered = "SELECT name FROM items ORDER BY price"
    assert grader.score("SELECT name FROM items ORDER BY price DESC", ordered).value == 0.0
    wrong = grader.score("SELECT name FROM items", ref)
    assert wrong.value == 0.0 and "3 rows vs 2" in wrong.detail


def test_sql_exec_invalid_sql_scores_zero_keeps_error_and_cannot_write(shop_db):
    grader = parse_grader(f"sql-exec:{shop_db}")
    invalid = grader.score("SELEC name FROM items", "SELECT name FROM items")
    assert invalid.value == 0.0 and "invalid SQL" in invalid.detail and "syntax error" in invalid.detail
    assert "no such table" in grader.score("SELECT * FROM nope", "SELECT 1").detail
    dropped = grader.score("DROP TABLE items", "SELECT 1")
    assert dropped.value == 0.0 and "readonly" in dropped.detail
    assert grader.score("SELECT count(*) FROM items", "SELECT 3").value == 1.0  # the table is still there
    assert "reference query failed" in grader.score("SELECT 1", "SELEC 1").detail
    with pytest.raises(GraderError, match="not found"):
        parse_grader("sql-exec:/no/such.sqlite")


def test_sql_exec_times_out_runaway_queries(shop_db, monkeypatch):
    import tunesmith.evaluate.graders as graders

    monkeypatch.setattr(graders, "SQL_TIMEOUT_S", 0.2)
    forever = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
    result = parse_grader(f"sql-exec:{shop_db}").score(forever, "SELECT 1")
    assert result.value == 0.0 and "timed out" in result.detail


def test_judge_reply_parsing():
    assert judge_score("5").value == 1.0
    assert judge_score("Score: 3/5").value == 0.5
    assert judge_score("I cannot rate this").value == 0.0


def test_judge_runs_a_local_model(tiny, monkeypatch):
    grader = parse_grader("judge:tiny-random")
    monkeypatch.setattr(type(grader.score_fn), "loaded", tiny)
    result = grader.score("Paris", "Paris")
    assert 0.0 <= result.value <= 1.0 and result.detail


def test_unknown_and_malformed_specs_say_what_to_use():
    with pytest.raises(GraderError, match="unknown grader"):
        parse_grader("fuzzy")
    with pytest.raises(GraderError, match="needs an argument"):
        parse_grader("regex:")
    with pytest.raises(GraderError, match="takes no argument"):
        parse_grader("exact:yes")
