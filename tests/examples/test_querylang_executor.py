import datetime as dt

import pytest

from examples.querylang.dataset import SCHEMA, build_library, schema_markdown
from examples.querylang.executor import QueryError, results_match, run_query

LIB = build_library()


def test_dataset_is_deterministic_and_sized():
    again = build_library.__wrapped__()  # bypass the cache: rebuild from the seed
    assert again.books == LIB.books and again.loans == LIB.loans
    assert (len(LIB.authors), len(LIB.books), len(LIB.members), len(LIB.loans)) == (60, 300, 80, 400)
    assert any("'" in b["title"] for b in LIB.books) and any('"' in b["title"] for b in LIB.books)


def test_schema_doc_is_the_generated_one():
    from pathlib import Path

    doc = Path(__file__).parents[2] / "examples" / "querylang" / "docs" / "schema.md"
    assert doc.read_text() == schema_markdown()
    for fields in SCHEMA.values():
        for f in fields:
            assert f"| {f.name} |" in doc.read_text()


def test_filter_matches_a_plain_python_filter():
    got = run_query('books | where genre = "poetry" and pages > 400 | pick title')
    expected = [b["title"] for b in LIB.books if b["genre"] == "poetry" and b["pages"] > 400]
    assert [r[0] for r in got.rows] == expected and expected


def test_negation_range_and_list():
    not_poetry = run_query('books | where not genre = "poetry" | count').rows[0][0]
    poetry = run_query('books | where genre = "poetry" | count').rows[0][0]
    assert not_poetry + poetry == len(LIB.books)
    in_range = run_query("books | where year in 1990..1999 | count").rows[0][0]
    assert in_range == sum(1990 <= b["year"] <= 1999 for b in LIB.books)
    listed = run_query('books | where genre in ["poetry", "travel"] | count').rows[0][0]
    assert listed == sum(b["genre"] in ("poetry", "travel") for b in LIB.books)


def test_sort_take_is_ordered_and_stable():
    got = run_query("books | sort -rating | take 5 | pick title, rating")
    ratings = [r[1] for r in got.rows]
    assert got.ordered and ratings == sorted(ratings, reverse=True)
    assert ratings[0] == max(b["rating"] for b in LIB.books)


def test_relations_are_followed_through_two_links():
    authors = LIB.by_id("authors")
    books = LIB.by_id("books")
    got = run_query('loans | where book.author.country = "Japan" | count').rows[0][0]
    assert got == sum(authors[books[loan["book"]]["author"]]["country"] == "Japan" for loan in LIB.loans)
    names = run_query('books | where author.country = "Japan" | pick author.name')
    assert all(authors_of == "Japan" for authors_of in
               [next(a["country"] for a in LIB.authors if a["name"] == r[0]) for r in names.rows])


def test_grouping_and_aggregates():
    got = run_query("books | count by genre | sort -count | take 1")
    assert got.columns == ("genre", "count")
    counts = {}
    for b in LIB.books:
        counts[b["genre"]] = counts.get(b["genre"], 0) + 1
    assert got.rows[0][1] == max(counts.values())
    avg = run_query('books | where genre = "travel" | avg pages').rows[0][0]
    pages = [b["pages"] for b in LIB.books if b["genre"] == "travel"]
    assert avg == round(sum(pages) / len(pages), 2)


def test_dates_and_flags():
    got = run_query("loans | where not returned and date in @2023-01-01..@2023-12-31 | count").rows[0][0]
    assert got == sum(not l["returned"] and l["date"].year == 2023 for l in LIB.loans)
    born = run_query("authors | where born < @1930-01-01 | pick born")
    assert born.rows and all(r[0] < dt.date(1930, 1, 1) for r in born.rows)


def test_has_is_case_insensitive_and_finds_quotes():
    got = run_query('books | where title has "RIVER" | pick title')
    assert got.rows and all("river" in r[0].lower() for r in got.rows)
    quoted = run_query(r'books | where title has "\"" | pick title')
    assert quoted.rows and all('"' in r[0] for r in quoted.rows)


@pytest.mark.parametrize("query, message", [
    ('members | where joined > "2020-01-01"', "dates are written @YYYY-MM-DD"),
    ("loans | where returned = 1", "where not returned"),
    ('books | where colour = "red"', "books has no field 'colour'"),
    ('books | where genre.name = "x"', "not a link"),
    ("books | avg title", "avg needs"),
    ("books | count | sort -pages", "no column 'pages'"),
    ("books | where year", "not yes/no"),
])
def test_type_errors_are_reported_not_silently_empty(query, message):
    with pytest.raises(QueryError, match=message.replace("(", r"\(")):
        run_query(query)


def test_results_match_ignores_order_unless_the_reference_sorts():
    a = run_query('books | where genre = "poetry" | pick title, year')
    b = run_query('books | where genre = "poetry" | sort year | pick year, title')
    assert results_match(b, a)  # same rows, column order and row order do not matter
    assert not results_match(run_query("books | sort -year | pick title, year"),
                             run_query("books | sort year | pick title, year"))
