import datetime as dt
import re
from pathlib import Path

import pytest

from examples.querylang.syntax import (
    And, Compare, Flag, InList, InRange, Not, Or, Pick, Query, QuerySyntaxError, Sort, Take, Where, Aggregate,
    canonicalize, parse_query, print_query,
)

REFERENCE = Path(__file__).parents[2] / "examples" / "querylang" / "docs" / "reference.md"


def test_parses_a_full_pipeline_into_the_tree():
    q = parse_query('books | where author.country = "Japan" and year in 1990..1999 | sort -rating | take 3 | pick title, year')
    assert q == Query("books", (
        Where(And((Compare("author.country", "=", "Japan"), InRange("year", 1990, 1999)))),
        Sort("rating", descending=True), Take(3), Pick(("title", "year")),
    ))


def test_values_dates_lists_flags_and_escapes():
    q = parse_query(r'loans | where not returned and date >= @2023-03-07 and book.title in ["Mara\'s", "The \"Quiet\" Forest"]'.replace("\\'", "'"))
    cond = q.stages[0].cond
    assert cond.conds[0] == Not(Flag("returned"))
    assert cond.conds[1] == Compare("date", ">=", dt.date(2023, 3, 7))
    assert cond.conds[2] == InList("book.title", ("Mara's", 'The "Quiet" Forest'))


def test_aggregates_and_grouping():
    assert parse_query("books | count").stages == (Aggregate("count"),)
    assert parse_query("books | avg rating by genre").stages == (Aggregate("avg", "rating", "genre"),)
    # columns produced by an aggregate may share a keyword's name
    assert parse_query("books | count by genre | sort -count | take 1").stages[1] == Sort("count", True)


@pytest.mark.parametrize("text", [
    'books | where genre = "poetry" and (pages < 100 or rating > 4.5) | pick title',
    'books | where not (genre = "poetry" or year < 1960)',
    'books | where not genre in ["fantasy", "mystery"] | pick title',
    'loans | where date in @2023-05-01..@2023-05-31 | count',
    'books | where title = "The \\"Wild\\" Letter" | pick author.name',
    "books | sort year | take 2",
    "loans | avg book.pages by member.city",
])
def test_canonical_text_round_trips(text):
    assert print_query(parse_query(text)) == text


def test_printer_normalises_spacing_and_parentheses():
    assert canonicalize('books|where  (pages>3)  and (a = 1 or b = 2)|pick title,year') == \
        "books | where pages > 3 and (a = 1 or b = 2) | pick title, year"
    # `and` binds tighter than `or`: parentheses around an `and` inside `or` are dropped
    assert canonicalize("books | where (a = 1 and b = 2) or c = 3") == "books | where a = 1 and b = 2 or c = 3"
    assert parse_query("books | where a = 1 or b = 2 and c = 3").stages[0].cond == Or(
        (Compare("a", "=", 1), And((Compare("b", "=", 2), Compare("c", "=", 3)))))


@pytest.mark.parametrize("text, line, column, expected", [
    ('books | where genre != "x"', 1, 21, "="),               # no != : negation is `not`
    ("books | where genre = 'x'", 1, 23, "double-quoted"),    # single quotes are not strings
    ('books | where genre == "x"', 1, 22, "string"),
    ("members | where joined > 2020-01-01", 1, 30, "end of query"),  # a date needs @
    ("books | sort", 1, 13, "field name"),
    ("films | count", 1, 1, "source"),
    ("books | where (pages > 3", 1, 25, "')'"),
    ("books\n| where pages >> 3", 2, 16, "number"),
    ("books | limit 3", 1, 9, "'take'"),
])
def test_syntax_errors_name_line_column_and_what_was_expected(text, line, column, expected):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert any(expected in e for e in info.value.expected), info.value.expected
    assert str(info.value).startswith(f"line {line}, column {column}:")


def test_impossible_date_is_a_syntax_error_at_the_date():
    with pytest.raises(QuerySyntaxError, match="not a calendar date") as info:
        parse_query("members | where joined > @2021-02-30")
    assert info.value.column == 26


def test_every_query_in_the_reference_parses():
    queries = re.findall(r"`((?:books|authors|members|loans) [^`]*)`", REFERENCE.read_text())
    assert len(queries) >= 15
    for q in queries:
        parse_query(q.replace("\\|", "|"))
