"""Generate question → Shelf query pairs, deterministically, with a test split a model cannot memorise.

Each intent has a builder (random slot values → canonical query) and several phrasings. The last
`HELD_OUT_TEMPLATES` phrasings of every intent and a held-out share of every value pool (genres, countries,
cities, author surnames, title words) appear only in the test split: a test question is phrased in a way
training never showed, about values training never mentioned. Validation uses training phrasings and values.

    python -m examples.querylang.generate --out data/querylang [--n-train 3000 --n-valid 200 --n-test 300]
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from examples.querylang import dataset as ds
from examples.querylang.syntax import (
    Aggregate, And, Compare, Flag, Has, InList, InRange, Not, Or, Pick, Query, Sort, Take, Where, print_query,
)
from tunesmith.paths import atomic_write_text

SYSTEM_PROMPT = "Write the Shelf query for the question."
HELD_OUT_TEMPLATES = 2
SEED = 7


@dataclass(frozen=True)
class Pools:
    """The entity values one split may mention."""

    genres: tuple[str, ...]
    countries: tuple[str, ...]
    cities: tuple[str, ...]
    authors: tuple[str, ...]
    titles: tuple[str, ...]
    words: tuple[str, ...]  # lower-case title words for `title has "..."`


def split_pools(seed: int = SEED) -> tuple[Pools, Pools]:
    """(train pools, test pools): disjoint, including no test title word inside any training title."""
    rng = random.Random(seed)
    library = ds.build_library()

    def held(values: tuple[str, ...], k: int) -> set[str]:
        return set(rng.sample(sorted(values), k))

    genres, countries, cities = held(ds.GENRES, 3), held(ds.COUNTRIES, 3), held(ds.CITIES, 3)
    surnames = held(ds.LAST_NAMES, 7)
    words = held(ds.ADJECTIVES, 5) | held(ds.NOUNS, 5)

    authors = sorted({a["name"] for a in library.authors})
    titles = sorted({b["title"] for b in library.books})
    test_authors = {a for a in authors if a.split()[-1] in surnames}
    test_titles = {t for t in titles if any(w.lower() in t.lower() for w in words)}

    def pools(keep: Callable[[str, set[str]], bool]) -> Pools:
        return Pools(
            genres=tuple(g for g in ds.GENRES if keep(g, genres)),
            countries=tuple(c for c in ds.COUNTRIES if keep(c, countries)),
            cities=tuple(c for c in ds.CITIES if keep(c, cities)),
            authors=tuple(a for a in authors if keep(a, test_authors)),
            titles=tuple(t for t in titles if keep(t, test_titles)),
            words=tuple(w.lower() for w in sorted(ds.ADJECTIVES + ds.NOUNS) if keep(w, words)),
        )

    return pools(lambda v, held_out: v not in held_out), pools(lambda v, held_out: v in held_out)


# --- phrase tables: (query pieces, ways to say them) -----------------------------------------------------------

NUMBER_CONDS = {  # (field, op): phrasings after "books ..."; {n} is the number
    ("pages", ">"): ("with more than {n} pages", "longer than {n} pages"),
    ("pages", "<"): ("with fewer than {n} pages", "shorter than {n} pages"),
    ("pages", ">="): ("with at least {n} pages",),
    ("pages", "<="): ("with at most {n} pages",),
    ("year", ">"): ("published after {n}",),
    ("year", "<"): ("published before {n}",),
    ("year", ">="): ("published in {n} or later",),
    ("year", "<="): ("published in {n} or earlier",),
    ("rating", ">"): ("rated above {n}", "with a rating higher than {n}"),
    ("rating", "<"): ("rated below {n}", "with a rating lower than {n}"),
    ("rating", ">="): ("rated {n} or more",),
    ("price", "<"): ("cheaper than ${n}", "costing less than ${n}"),
    ("price", ">"): ("costing more than ${n}", "priced above ${n}"),
    ("price", "<="): ("costing at most ${n}",),
}
SUPERLATIVES = {  # (sort column, descending): "the 3 ___ books"
    ("rating", True): ("highest rated", "best rated"),
    ("rating", False): ("lowest rated", "worst rated"),
    ("pages", True): ("longest",),
    ("pages", False): ("shortest",),
    ("year", False): ("oldest",),
    ("year", True): ("newest", "most recent"),
    ("price", True): ("most expensive",),
    ("price", False): ("cheapest",),
}
ORDERS = {  # (sort column, descending): "list them ___"
    ("year", False): ("from oldest to newest", "by publication year"),
    ("year", True): ("newest first", "from newest to oldest"),
    ("rating", True): ("best rated first", "by rating, highest first"),
    ("pages", False): ("shortest first", "by page count"),
    ("price", False): ("cheapest first", "by price"),
    ("price", True): ("most expensive first",),
}
AGGREGATES = {  # (function, column): "the ___ of fantasy books"
    ("avg", "pages"): ("average number of pages", "average page count"),
    ("avg", "rating"): ("average rating", "mean rating"),
    ("avg", "price"): ("average price",),
    ("max", "rating"): ("highest rating", "best rating"),
    ("min", "rating"): ("lowest rating",),
    ("min", "price"): ("lowest price",),
    ("max", "price"): ("highest price",),
    ("max", "pages"): ("largest number of pages",),
    ("min", "year"): ("earliest publication year",),
    ("max", "year"): ("latest publication year",),
    ("sum", "pages"): ("total number of pages",),
    ("sum", "price"): ("total price",),
}
GROUPS = {  # (table, group column): "how many ___"
    ("books", "genre"): ("books per genre", "books in each genre"),
    ("authors", "country"): ("authors per country", "authors from each country"),
    ("members", "city"): ("members per city", "members in each city"),
    ("loans", "book.genre"): ("loans per book genre", "loans for each genre"),
    ("loans", "member.city"): ("loans per member city", "loans by members of each city"),
    ("books", "author.country"): ("books per author country", "books by authors of each country"),
}
GROUP_KEYS = {"genre": ("genre", "each genre"), "author.country": ("author country", "each author country")}
RANKED_GROUPS = {  # (table, column): (plural of the group, what is counted)
    ("books", "genre"): ("genres", "books"),
    ("members", "city"): ("cities", "members"),
    ("authors", "country"): ("countries", "authors"),
}
OR_CONDS = {  # conditions for "either ... or ..."; {n} is the number
    ("pages", "<"): "shorter than {n} pages",
    ("pages", ">"): "longer than {n} pages",
    ("rating", ">"): "rated above {n}",
    ("year", "<"): "published before {n}",
    ("year", ">"): "published after {n}",
    ("price", "<"): "cheaper than ${n}",
}
DATE_CONDS = {">": ("after {d}",), "<": ("before {d}",), ">=": ("on or after {d}",), "<=": ("on or before {d}",)}


# --- slot values -----------------------------------------------------------------------------------------------


def number_for(rng: random.Random, column: str) -> int | float:
    if column == "pages":
        return rng.randrange(100, 850, 10)
    if column == "year":
        return rng.randint(1955, 2020)
    if column == "rating":
        return rng.randint(15, 48) / 10
    return rng.randint(8, 35)  # price, in whole dollars


def date_text(rng: random.Random, day: dt.date) -> str:
    """A date as people write it; the query always says @YYYY-MM-DD."""
    month = calendar.month_name[day.month]
    return rng.choice([day.isoformat(), f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}"])


def random_day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def period(rng: random.Random) -> tuple[str, dt.date, dt.date]:
    """A month or a whole year of loans: (how it is said, first day, last day)."""
    year = rng.choice((2022, 2023, 2024))
    if rng.random() < 0.3:
        return str(year), dt.date(year, 1, 1), dt.date(year, 12, 31)
    month = rng.randint(1, 6 if year == 2024 else 12)
    last = calendar.monthrange(year, month)[1]
    return f"{calendar.month_name[month]} {year}", dt.date(year, month, 1), dt.date(year, month, last)


def pick_phrase(rng: random.Random, table: dict) -> tuple[tuple, str]:
    key = rng.choice(sorted(table, key=repr))
    phrases = table[key]
    return key, rng.choice(phrases) if isinstance(phrases, tuple) else phrases


def two(rng: random.Random, values: tuple[str, ...], k: int = 2) -> list[str]:
    return rng.sample(values, k)


def q(source: str, *stages) -> Query:
    return Query(source, tuple(stages))


def title_slot(rng: random.Random, pools: Pools) -> tuple[str, str]:
    """(the title as the question writes it, the title itself): sometimes in single quotes, as people do."""
    title = rng.choice(pools.titles)
    return (f"'{title}'" if rng.random() < 0.25 else title), title


# --- intents: builder (rng, pools) -> (slots, query) and phrasings (the last two are held out for test) --------

Builder = Callable[[random.Random, Pools], tuple[dict[str, str], Query]]


def _filter_genre(rng, p):
    g = rng.choice(p.genres)
    return {"genre": g}, q("books", Where(Compare("genre", "=", g)), Pick(("title",)))


def _filter_number(rng, p):
    (col, op), phrase = pick_phrase(rng, NUMBER_CONDS)
    n = number_for(rng, col)
    return {"cond": phrase.format(n=n)}, q("books", Where(Compare(col, op, n)), Pick(("title",)))


def _negation_genre(rng, p):
    g = rng.choice(p.genres)
    return {"genre": g}, q("books", Where(Not(Compare("genre", "=", g))), Pick(("title",)))


def _negation_country(rng, p):
    c = rng.choice(p.countries)
    return {"country": c}, q("authors", Where(Not(Compare("country", "=", c))), Pick(("name",)))


def _negation_list(rng, p):
    g1, g2 = two(rng, p.genres)
    return {"g1": g1, "g2": g2}, q("books", Where(Not(InList("genre", (g1, g2)))), Pick(("title",)))


def _range(rng, p):
    if rng.random() < 0.6:
        a = rng.randint(1955, 2010)
        b = a + rng.randint(2, 12)
        phrase = rng.choice(("published between {a} and {b}", "published from {a} to {b}"))
        col = "year"
    else:
        a = rng.randrange(100, 600, 50)
        b = a + rng.randrange(50, 300, 50)
        phrase = rng.choice(("with {a} to {b} pages", "with between {a} and {b} pages"))
        col = "pages"
    return {"range": phrase.format(a=a, b=b)}, q("books", Where(InRange(col, a, b)), Pick(("title",)))


def _members_joined(rng, p):
    op, phrase = pick_phrase(rng, DATE_CONDS)
    day = random_day(rng, dt.date(2018, 6, 1), dt.date(2024, 3, 31))
    return {"cond": "who joined " + phrase.format(d=date_text(rng, day))}, q(
        "members", Where(Compare("joined", op, day)), Pick(("name",)))


def _authors_born(rng, p):
    op, phrase = pick_phrase(rng, DATE_CONDS)
    day = random_day(rng, dt.date(1925, 1, 1), dt.date(1990, 12, 31))
    return {"cond": phrase.format(d=date_text(rng, day))}, q(
        "authors", Where(Compare("born", op, day)), Pick(("name",)))


def _loans_period(rng, p):
    said, first, last = period(rng)
    return {"period": said}, q("loans", Where(InRange("date", first, last)), Aggregate("count"))


def _top_k(rng, p):
    (col, desc), phrase = pick_phrase(rng, SUPERLATIVES)
    k = rng.randint(2, 10)
    return {"k": str(k), "sup": phrase}, q("books", Sort(col, desc), Take(k), Pick(("title",)))


def _filter_sort(rng, p):
    (col, desc), phrase = pick_phrase(rng, ORDERS)
    g = rng.choice(p.genres)
    return {"genre": g, "order": phrase}, q("books", Where(Compare("genre", "=", g)), Sort(col, desc), Pick(("title",)))


def _count_genre(rng, p):
    g = rng.choice(p.genres)
    return {"genre": g}, q("books", Where(Compare("genre", "=", g)), Aggregate("count"))


def _count_city(rng, p):
    c = rng.choice(p.cities)
    return {"city": c}, q("members", Where(Compare("city", "=", c)), Aggregate("count"))


def _aggregate(rng, p):
    (fn, col), phrase = pick_phrase(rng, AGGREGATES)
    g = rng.choice(p.genres)
    return {"agg": phrase, "genre": g}, q("books", Where(Compare("genre", "=", g)), Aggregate(fn, col))


def _group_count(rng, p):
    (table, col), phrase = pick_phrase(rng, GROUPS)
    return {"grp": phrase}, q(table, Aggregate("count", None, col))


def _group_agg(rng, p):
    (fn, col), phrase = pick_phrase(rng, AGGREGATES)
    key, key_phrase = pick_phrase(rng, GROUP_KEYS)
    return {"agg": phrase, "key": key_phrase}, q("books", Aggregate(fn, col, key))


def _group_top(rng, p):
    table, col = rng.choice(sorted(RANKED_GROUPS))
    plural, things = RANKED_GROUPS[(table, col)]
    k = rng.randint(2, 5)
    return {"k": str(k), "plural": plural, "things": things}, q(
        table, Aggregate("count", None, col), Sort("count", True), Take(k))


def _books_by_country(rng, p):
    c = rng.choice(p.countries)
    return {"country": c}, q("books", Where(Compare("author.country", "=", c)), Pick(("title",)))


def _books_by_author(rng, p):
    a = rng.choice(p.authors)
    return {"author": a}, q("books", Where(Compare("author.name", "=", a)), Pick(("title",)))


def _loans_genre(rng, p):
    g = rng.choice(p.genres)
    return {"genre": g}, q("loans", Where(Compare("book.genre", "=", g)), Aggregate("count"))


def _loans_country(rng, p):
    c = rng.choice(p.countries)
    return {"country": c}, q("loans", Where(Compare("book.author.country", "=", c)), Aggregate("count"))


def _loans_city(rng, p):
    c = rng.choice(p.cities)
    return {"city": c}, q("loans", Where(Compare("member.city", "=", c)), Pick(("book.title",)))


def _nested_and(rng, p):
    g1, g2 = two(rng, p.genres)
    (col, op), phrase = pick_phrase(rng, NUMBER_CONDS)
    n = number_for(rng, col)
    cond = And((InList("genre", (g1, g2)), Compare(col, op, n)))
    return {"g1": g1, "g2": g2, "cond": phrase.format(n=n)}, q("books", Where(cond), Pick(("title",)))


def _nested_or(rng, p):
    g = rng.choice(p.genres)
    first, second = rng.sample(sorted(OR_CONDS), 2)
    n1, n2 = number_for(rng, first[0]), number_for(rng, second[0])
    cond = And((Compare("genre", "=", g), Or((Compare(*first, n1), Compare(*second, n2)))))
    slots = {"genre": g, "c1": OR_CONDS[first].format(n=n1), "c2": OR_CONDS[second].format(n=n2)}
    return slots, q("books", Where(cond), Pick(("title",)))


def _in_list_count(rng, p):
    g1, g2, g3 = two(rng, p.genres, 3)
    return {"g1": g1, "g2": g2, "g3": g3}, q("books", Where(InList("genre", (g1, g2, g3))), Aggregate("count"))


def _contains(rng, p):
    w = rng.choice(p.words)
    return {"word": w}, q("books", Where(Has("title", w)), Pick(("title",)))


def _title_author(rng, p):
    said, title = title_slot(rng, p)
    return {"title": said}, q("books", Where(Compare("title", "=", title)), Pick(("author.name",)))


def _title_year(rng, p):
    said, title = title_slot(rng, p)
    return {"title": said}, q("books", Where(Compare("title", "=", title)), Pick(("year",)))


def _unreturned_city(rng, p):
    c = rng.choice(p.cities)
    cond = And((Not(Flag("returned")), Compare("member.city", "=", c)))
    return {"city": c}, q("loans", Where(cond), Aggregate("count"))


@dataclass(frozen=True)
class Intent:
    name: str
    build: Builder
    templates: tuple[str, ...]  # the last HELD_OUT_TEMPLATES are test-only


INTENTS: tuple[Intent, ...] = (
    Intent("filter_genre", _filter_genre, (
        "List the titles of all {genre} books.", "Show me every {genre} book.",
        "Which books belong to the {genre} genre?", "Titles of {genre} books, please.", "What {genre} books are there?",
        "Find {genre} books.", "Do you have any {genre} titles?", "Books in the {genre} category?",
        "Which titles are filed under {genre}?",
        "I'm looking for {genre} books: which titles do you have?", "Give me the names of the books in {genre}.")),
    Intent("filter_number", _filter_number, (
        "List books {cond}.", "Find all books {cond}.", "Show me the books {cond}.", "Titles of books {cond}?",
        "What books do we have {cond}?",
        "Which books are {cond}?", "Books {cond}, please.", "Search for books {cond}.", "Show every title {cond}.",
        "I need every book {cond}.", "Could you list the books {cond}?")),
    Intent("negation_genre", _negation_genre, (
        "Which books are not {genre}?", "List all books except the {genre} ones.",
        "Show titles of books that aren't {genre}.",
        "Every book that is not in {genre}.", "Books outside the {genre} genre?",
        "Books that aren't {genre}, please.", "Which titles are not in the {genre} genre?",
        "Find books whose genre isn't {genre}.", "Exclude {genre}: list the books.",
        "Anything but {genre}: which books?", "Titles excluding {genre} books.")),
    Intent("negation_country", _negation_country, (
        "Which authors are not from {country}?", "List authors who aren't from {country}.",
        "Authors from anywhere except {country}.", "Show authors whose country is not {country}.",
        "Names of authors not from {country}.",
        "Authors who are not from {country}?", "Find every author outside {country}.",
        "Which writers aren't from {country}?", "List the authors except the ones from {country}.",
        "Who are the authors that don't come from {country}?", "Every author excluding those from {country}.")),
    Intent("negation_list", _negation_list, (
        "Which books are neither {g1} nor {g2}?", "List books that are not {g1} or {g2}.",
        "Books except {g1} and {g2} ones?", "Show titles outside {g1} and {g2}.",
        "Find books in neither {g1} nor {g2}.",
        "Which books are not {g1} and not {g2}?", "Titles that are neither {g1} nor {g2}, please.",
        "Exclude {g1} and {g2}: which books are left?", "Books whose genre is not {g1} or {g2}?",
        "Everything except {g1} and {g2} books, please.", "Give me books that are not in {g1} or {g2}.")),
    Intent("range", _range, (
        "Show the books {range}.", "Find books {range}.", "Titles of books {range}, please.",
        "What books are there {range}?", "Give me books {range}.",
        "Which books are there {range}?", "List the titles {range}.", "Search for books {range}.",
        "Books {range}, please.",
        "I want all books {range}.", "Could you find books {range}?")),
    Intent("members_joined", _members_joined, (
        "Which members {cond}?", "List members {cond}.", "Names of members {cond}.", "Find the members {cond}.",
        "Show all members {cond}.",
        "Members {cond}?", "Which of our members {cond}?", "Tell me which members {cond}.", "Names of everyone {cond}.",
        "Who are the members {cond}?", "I'd like the names of members {cond}.")),
    Intent("authors_born", _authors_born, (
        "Which authors were born {cond}?", "List authors born {cond}.", "Names of authors born {cond}.",
        "Find authors whose birth date is {cond}.", "Show the authors born {cond}.",
        "Authors born {cond}?", "Which writers were born {cond}?", "Tell me the authors born {cond}.",
        "Find every author who was born {cond}.",
        "Who among the authors was born {cond}?", "Give me every author born {cond}.")),
    Intent("loans_period", _loans_period, (
        "How many loans were made in {period}?", "Count the loans from {period}.",
        "Number of books borrowed in {period}?", "How many borrowings happened in {period}?",
        "Total loans during {period}?",
        "How many books were checked out in {period}?", "Loans in {period}: how many?",
        "Count how many books were lent in {period}.", "How many times was a book taken out in {period}?",
        "What's the loan count for {period}?", "In {period}, how many loans were there?")),
    Intent("top_k", _top_k, (
        "What are the {k} {sup} books?", "List the {k} {sup} books.", "Top {k} {sup} books?",
        "Show the {k} {sup} titles.", "Give me the {k} {sup} books.",
        "Find the {k} {sup} books.", "Which are the {k} {sup} books?", "The {k} {sup} titles, please.",
        "I want the {sup} {k} titles.",
        "Which {k} books are the {sup}?", "Name the {sup} {k} books.")),
    Intent("filter_sort", _filter_sort, (
        "List {genre} books {order}.", "Show {genre} titles sorted {order}.", "Sort the {genre} books {order}.",
        "{genre} books, {order}.", "Give me the {genre} books ordered {order}.",
        "Sort {genre} books {order}.", "Which {genre} books are there, {order}?", "Show me the {genre} titles {order}.",
        "Order the {genre} books {order}.",
        "I want the {genre} books listed {order}.", "Could you show {genre} books {order}?")),
    Intent("count_genre", _count_genre, (
        "How many {genre} books are there?", "Count the {genre} books.", "Number of books in {genre}?",
        "How many books are {genre}?", "What is the number of {genre} books?",
        "Count how many {genre} books there are.", "How many titles are {genre}?", "{genre} books: how many?",
        "How many books in the {genre} genre?",
        "How many titles do we have in {genre}?", "Tell me the count of {genre} books.")),
    Intent("count_city", _count_city, (
        "How many members live in {city}?", "Count members from {city}.", "Number of members in {city}?",
        "How many of our members are based in {city}?", "What's the member count for {city}?",
        "How many members are from {city}?", "Count the people who live in {city}.", "{city} members: how many?",
        "Number of our members living in {city}?",
        "How many people from {city} are members?", "Members living in {city}: how many?")),
    Intent("aggregate", _aggregate, (
        "What is the {agg} of {genre} books?", "{agg} for {genre} books?", "Tell me the {agg} among {genre} books.",
        "Compute the {agg} of the {genre} books.", "What's the {agg} for books in {genre}?",
        "Give me the {agg} of {genre} books.", "Among {genre} books, what is the {agg}?",
        "Find the {agg} for the {genre} genre.", "{genre} books: {agg}?",
        "For {genre} books, what is the {agg}?", "I'd like to know the {agg} across {genre} titles.")),
    Intent("group_count", _group_count, (
        "How many {grp}?", "Count the {grp}.", "Number of {grp}?", "Give me a count of {grp}.",
        "Show the number of {grp}.",
        "How many {grp} are there?", "List the number of {grp}.", "Count of {grp}?", "Tell me the number of {grp}.",
        "What's the breakdown of {grp}?", "Tally the {grp}.")),
    Intent("group_agg", _group_agg, (
        "What is the {agg} per {key}?", "Show the {agg} for {key}.", "{agg} by {key}?",
        "Give me the {agg} of books for {key}.", "Compute the {agg} grouped by {key}.",
        "Find the {agg} for {key}.", "List the {agg} by {key}.", "What's the {agg} for {key}?",
        "Tell me the {agg} per {key}.",
        "For {key}, what's the {agg}?", "Break down the {agg} by {key}, please.")),
    Intent("group_top", _group_top, (
        "Which {k} {plural} have the most {things}?", "What are the top {k} {plural} by number of {things}?",
        "List the {k} {plural} with the most {things}.", "Top {k} {plural} ranked by {things} count?",
        "Name the {k} {plural} with the largest number of {things}.",
        "Top {k} {plural} by {things}?", "Which {k} {plural} count the most {things}?",
        "Rank {plural} by {things} and show the top {k}.", "Find the {k} {plural} with the most {things}.",
        "Show the {k} {plural} that have the most {things}.", "Give me the {k} {plural} with the highest count of {things}.")),
    Intent("books_by_country", _books_by_country, (
        "Which books were written by authors from {country}?", "List books whose author is from {country}.",
        "Show titles by authors from {country}.", "Books written by someone from {country}?",
        "Find the books of authors from {country}.",
        "Books by authors from {country}?", "Which titles come from authors in {country}?",
        "Give me books by writers from {country}.", "List what authors from {country} wrote.",
        "What have authors from {country} written?", "Titles authored by people from {country}, please.")),
    Intent("books_by_author", _books_by_author, (
        "What books did {author} write?", "List books by {author}.", "Titles written by {author}?",
        "Show all books authored by {author}.", "Which books are by {author}?",
        "Books written by {author}?", "Find the titles by {author}.", "What has {author} written?",
        "List everything by {author}.",
        "{author} wrote which books?", "Give me everything {author} has written.")),
    Intent("loans_genre", _loans_genre, (
        "How many loans were for {genre} books?", "Count loans of {genre} books.",
        "Number of times {genre} books were borrowed?", "How often were {genre} books borrowed?",
        "Total loans of books in {genre}?",
        "How many {genre} books were lent out?", "Count the times a {genre} book was borrowed.",
        "Number of {genre} checkouts?", "How many {genre} books have been taken out?",
        "How many times has a {genre} book been checked out?", "Loans involving {genre} books: how many?")),
    Intent("loans_country", _loans_country, (
        "How many loans were of books by authors from {country}?",
        "Count loans of books written by authors from {country}.",
        "Number of borrowed books whose author is from {country}?",
        "How often were books by {country} authors borrowed?",
        "Total loans for authors from {country}?",
        "How many times were books by authors from {country} lent?", "Count the loans for books by {country} authors.",
        "Number of checkouts of books by authors from {country}?",
        "How many books by writers from {country} were borrowed?",
        "How many times were books from {country} authors checked out?", "Loans of books by writers from {country}: how many?")),
    Intent("loans_city", _loans_city, (
        "Which books were borrowed by members from {city}?", "List titles borrowed by members in {city}.",
        "What did members from {city} borrow?", "Show books that members in {city} have borrowed.",
        "Titles loaned to members living in {city}?",
        "Which titles did members from {city} borrow?", "List the books lent to members in {city}.",
        "Which books have members in {city} checked out?", "Titles borrowed by {city} members?",
        "Books checked out by people from {city}?", "Give me the titles members in {city} took out.")),
    Intent("nested_and", _nested_and, (
        "Show {g1} or {g2} books {cond}.", "Find books that are {g1} or {g2} and {cond}.",
        "List {g1} and {g2} books {cond}.", "{g1} or {g2} titles {cond}?", "Which {g1} or {g2} books are there {cond}?",
        "Find {g1} or {g2} books {cond}.", "Books in {g1} or {g2} {cond}?", "List the {g1} or {g2} titles {cond}.",
        "Which books are {g1} or {g2} and {cond}?",
        "Give me the {g1} or {g2} books {cond}.", "I want books in {g1} or {g2} {cond}.")),
    Intent("nested_or", _nested_or, (
        "{genre} books that are either {c1} or {c2}.", "List {genre} books {c1} or {c2}.",
        "Which {genre} books are {c1} or {c2}?", "Show {genre} titles that are {c1} or else {c2}.",
        "Find {genre} books either {c1} or {c2}.",
        "{genre} books {c1} or {c2}?", "Find {genre} titles {c1} or {c2}.",
        "Show me {genre} books that are either {c1} or {c2}.", "Which {genre} titles are either {c1} or {c2}?",
        "Among {genre} books, which are {c1} or {c2}?", "Give me {genre} books that are {c1} or {c2}.")),
    Intent("in_list_count", _in_list_count, (
        "How many books are in {g1}, {g2} or {g3}?", "Count books from the genres {g1}, {g2} and {g3}.",
        "Number of {g1}, {g2} or {g3} books?", "How many books belong to {g1}, {g2} or {g3}?",
        "Total books across {g1}, {g2} and {g3}?",
        "Count the {g1}, {g2} and {g3} books.", "How many {g1}, {g2} or {g3} titles are there?",
        "Number of books in {g1}, {g2} or {g3}?", "Books in {g1}, {g2} and {g3}: how many?",
        "What's the combined number of {g1}, {g2} and {g3} books?", "Across {g1}, {g2} and {g3}, how many books are there?")),
    Intent("contains", _contains, (
        "Which titles contain the word {word}?", "Books whose title mentions {word}?",
        "Find books with {word} in the title.", 'List titles containing "{word}".',
        "Show books titled with the word {word}.",
        "Titles with {word} in them?", "Look up books whose title includes {word}.",
        "Which books have {word} in the title?", "Find titles that contain {word}.",
        "Any book with {word} in its name?", "Search titles for {word}.")),
    Intent("title_author", _title_author, (
        "Who wrote {title}?", "Who is the author of {title}?", "Name the author of {title}.",
        "Which author wrote the book {title}?", "Author of {title}?",
        "Who's the author of {title}?", "Who authored {title}?", "Tell me the author of {title}.",
        "Find the author of {title}.",
        "{title} was written by whom?", "Tell me who authored {title}.")),
    Intent("title_year", _title_year, (
        "When was {title} published?", "What year did {title} come out?", "Publication year of {title}?",
        "In which year was {title} released?", "Year of {title}?",
        "What year was {title} published?", "When did {title} come out?", "Find the publication year of {title}.",
        "Which year is {title} from?",
        "{title} came out in what year?", "Tell me the year {title} was published.")),
    Intent("unreturned_city", _unreturned_city, (
        "How many loans from members in {city} are not yet returned?", "Count unreturned loans by {city} members.",
        "Number of outstanding loans for members from {city}?",
        "How many books borrowed by {city} members are still out?",
        "Open loans for members in {city}: how many?",
        "How many loans by members in {city} are still open?",
        "Count the loans from {city} members that have not been returned.",
        "Number of books {city} members have not returned?", "How many unreturned loans are there for {city}?",
        "How many loans by {city} members haven't come back yet?", "Tell me how many loans in {city} are still not returned.")),
)


# --- generation ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    question: str
    query: str
    intent: str
    template: str  # "intent/index": which phrasing produced the question
    split: str

    def to_chat(self) -> dict:
        return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.question},
                             {"role": "assistant", "content": self.query}]}


def render_question(template: str, slots: dict[str, str], rng: random.Random) -> str:
    """Fill the template; vary capitalisation and final punctuation as real users do."""
    text = template.format(**slots)
    text = text[0].upper() + text[1:]
    if rng.random() < 0.15:
        text = text[0].lower() + text[1:]
    if rng.random() < 0.15 and text[-1] in ".?":
        text = text[:-1]
    return text


def question_key(question: str) -> str:
    """Questions that differ only in case, punctuation or spacing count as one (as the data validator sees them)."""
    return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


def generate_split(split: str, n: int, pools: Pools, seen: set[str], seed: int) -> list[Pair]:
    """`n` pairs (fewer only if the intents run out of distinct questions), intents in round-robin."""
    rng = random.Random(f"{seed}:{split}")
    test = split == "test"
    pairs: list[Pair] = []
    misses = 0
    while len(pairs) < n and misses < 50 * n:
        intent = INTENTS[len(pairs) % len(INTENTS) if misses == 0 else rng.randrange(len(INTENTS))]
        indices = range(len(intent.templates))
        choices = indices[-HELD_OUT_TEMPLATES:] if test else indices[:-HELD_OUT_TEMPLATES]
        index = rng.choice(list(choices))
        slots, query = intent.build(rng, pools)
        question = render_question(intent.templates[index], slots, rng)
        key = question_key(question)
        if key in seen:
            misses += 1
            continue
        misses = 0
        seen.add(key)
        pairs.append(Pair(question, print_query(query), intent.name, f"{intent.name}/{index}", split))
    return pairs


def generate(n_train: int = 3000, n_valid: int = 200, n_test: int = 300, seed: int = SEED) -> dict[str, list[Pair]]:
    """The three splits; the same arguments give the same pairs on every machine."""
    train_pools, test_pools = split_pools(seed)
    seen: set[str] = set()
    return {
        "train": generate_split("train", n_train, train_pools, seen, seed),
        "validation": generate_split("validation", n_valid, train_pools, seen, seed),
        "test": generate_split("test", n_test, test_pools, seen, seed),
    }


def write_splits(out: Path, splits: dict[str, list[Pair]], seed: int = SEED) -> dict[str, Path]:
    """Write `<split>.jsonl` (chat format), `pairs.jsonl` (with intent and template) and `manifest.json`."""
    out = Path(out)
    paths = {}
    for name, pairs in splits.items():
        paths[name] = out / f"{name}.jsonl"
        atomic_write_text(paths[name], "".join(json.dumps(p.to_chat(), ensure_ascii=False) + "\n" for p in pairs))
    every = [p for pairs in splits.values() for p in pairs]
    atomic_write_text(out / "pairs.jsonl", "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in every))
    _, test_pools = split_pools(seed)
    manifest = {
        "seed": seed, "counts": {k: len(v) for k, v in splits.items()}, "intents": [i.name for i in INTENTS],
        "held_out_values": {k: list(v) for k, v in asdict(test_pools).items()},
        "system_prompt": SYSTEM_PROMPT,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for train/validation/test.jsonl")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-valid", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    splits = generate(args.n_train, args.n_valid, args.n_test, args.seed)
    write_splits(args.out, splits, args.seed)
    print(", ".join(f"{k}: {len(v)}" for k, v in splits.items()), "→", args.out)


if __name__ == "__main__":
    main()
