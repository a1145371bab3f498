import pytest

from examples.querylang.grader import exact_match, execution_match, extract_query, parse_valid

REF = 'books | where genre = "poetry" | pick title'


def test_extracts_the_query_from_fences_and_chatter():
    assert extract_query(f"```shelf\n{REF}\n```") == REF
    assert extract_query(f"Sure! Here is the query:\n{REF}\nHope it helps.") == REF
    assert extract_query(f"Query: {REF}") == REF
    assert extract_query("no query here") == "no query here"


def test_execution_match_accepts_equivalent_queries():
    assert execution_match(REF, REF)[0] == 1.0
    score, detail = execution_match('books | where genre in ["poetry"] | pick title', REF)
    assert score == 1.0 and detail.startswith("same")
    score, _ = execution_match("books | where year >= 1990 and year <= 1999 | pick title",
                               "books | where year in 1990..1999 | pick title")
    assert score == 1.0


def test_execution_match_rejects_wrong_rows_errors_and_order():
    assert execution_match('books | where genre = "travel" | pick title', REF)[0] == 0.0
    score, detail = execution_match('books | where genre = "poetry" | pick genre', REF)
    assert score == 0.0 and detail == "different columns: got genre; expected title"
    score, detail = execution_match("books | where genre != 'poetry'", REF)
    assert score == 0.0 and "QuerySyntaxError" in detail and "column 21" in detail
    score, detail = execution_match('members | where joined > "2020-01-01" | pick name',
                                    "members | where joined > @2020-01-01 | pick name")
    assert score == 0.0 and "@YYYY-MM-DD" in detail
    score, detail = execution_match("books | sort year | take 3 | pick title", "books | sort -year | take 3 | pick title")
    assert score == 0.0


def test_parse_valid_and_exact_match():
    assert parse_valid(REF)[0] == 1.0
    assert parse_valid("SELECT title FROM books")[0] == 0.0
    assert exact_match(REF + "\n", REF)[0] == 1.0
    assert exact_match(REF.replace(" | ", "|"), REF)[0] == 0.0  # canonical spacing is part of exact match
    assert exact_match(REF, None)[0] == 0.0


def test_usable_as_a_tunesmith_python_grader():
    graders = pytest.importorskip("tunesmith.evaluate.graders")
    grader = graders.parse_grader("python:examples.querylang.grader:execution_match")
    assert grader.score(REF, REF).value == 1.0
    assert grader.score("books | count", REF).value == 0.0
