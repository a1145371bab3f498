"""The embedded library dataset Shelf queries run over: four tables, generated deterministically from a seed.

authors (60) ◄── books (300) ◄── loans (400) ──► members (80). Same seed, same records, on every machine.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SEED = 20240611


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # int | float | str | date | bool | ref
    doc: str
    ref: str | None = None  # the table a `ref` field points to


SCHEMA: dict[str, tuple[Field, ...]] = {
    "authors": (
        Field("id", "int", "unique author number"),
        Field("name", "str", 'full name, e.g. "Mara Okafor"'),
        Field("country", "str", 'country of origin, e.g. "Japan"'),
        Field("born", "date", "date of birth"),
    ),
    "books": (
        Field("id", "int", "unique book number"),
        Field("title", "str", "title; may contain apostrophes and double quotes"),
        Field("genre", "str", 'lower-case genre, e.g. "science fiction"'),
        Field("year", "int", "year of publication"),
        Field("pages", "int", "number of pages"),
        Field("rating", "float", "average reader rating, 1.0 to 5.0"),
        Field("price", "float", "price in dollars"),
        Field("author", "ref", "the book's author", ref="authors"),
    ),
    "members": (
        Field("id", "int", "unique member number"),
        Field("name", "str", "full name"),
        Field("city", "str", 'home city, e.g. "Lisbon"'),
        Field("joined", "date", "date the member joined the library"),
    ),
    "loans": (
        Field("id", "int", "unique loan number"),
        Field("book", "ref", "the book borrowed", ref="books"),
        Field("member", "ref", "the member who borrowed it", ref="members"),
        Field("date", "date", "date the book was borrowed"),
        Field("returned", "bool", "yes once the book has come back"),
    ),
}

GENRES = ("fantasy", "mystery", "romance", "horror", "poetry", "biography", "history", "science fiction",
          "thriller", "travel", "cooking", "philosophy")
COUNTRIES = ("Japan", "Brazil", "Canada", "Nigeria", "France", "India", "Mexico", "Sweden", "Egypt", "Australia",
             "Chile", "Poland", "Kenya", "Ireland")
CITIES = ("Lisbon", "Oslo", "Toronto", "Nairobi", "Lyon", "Osaka", "Porto", "Denver", "Quito", "Hamburg",
          "Krakow", "Perth")
FIRST_NAMES = ("Mara", "Tobias", "Ines", "Kenji", "Amara", "Lucas", "Priya", "Oskar", "Leila", "Mateo", "Sofia",
               "Diego", "Hana", "Femi", "Clara", "Ravi", "Elena", "Jonas", "Aiko", "Nadia", "Pablo", "Greta",
               "Tariq", "Lena", "Omar", "Freya", "Bruno", "Yara", "Felix", "Zainab")
LAST_NAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Kowalski", "Haddad", "Brennan", "Costa",
              "Nakamura", "Adeyemi", "Fischer", "Duarte", "Iyer", "Novak", "Ortega", "Berg", "Mensah", "Quinn",
              "Rossi", "Sato", "Walsh", "Yilmaz", "Zhou", "Petrov", "Laine", "Kariuki", "Dubois", "Reyes", "Holm")
ADJECTIVES = ("Silent", "Hidden", "Golden", "Broken", "Last", "Crimson", "Quiet", "Burning", "Frozen", "Wandering",
              "Hollow", "Bright", "Lonely", "Secret", "Distant", "Wild", "Paper", "Iron", "Velvet", "Salt")
NOUNS = ("River", "Garden", "Lantern", "Harbor", "Mirror", "Forest", "Letter", "Island", "Orchard", "Clock",
         "Bridge", "Tower", "Compass", "Meadow", "Shadow", "Kitchen", "Voyage", "Atlas", "Feather", "Winter")
PLACES = ("Avalon", "the North", "Tangier", "the Valley", "Kyoto", "the Dunes", "Marrakesh", "the Coast")


@dataclass
class Library:
    authors: list[dict[str, Any]]
    books: list[dict[str, Any]]
    members: list[dict[str, Any]]
    loans: list[dict[str, Any]]
    _ids: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> list[dict[str, Any]]:
        return getattr(self, name)

    def by_id(self, name: str) -> dict[int, dict[str, Any]]:
        if name not in self._ids:  # following a link is a dict look-up, built once per table
            self._ids[name] = {row["id"]: row for row in self.table(name)}
        return self._ids[name]


@lru_cache(maxsize=4)
def build_library(seed: int = SEED) -> Library:
    """The dataset for `seed`: the same records every call (callers must not mutate them)."""
    rng = random.Random(seed)
    authors = _authors(rng, 60)
    books = _books(rng, 300, len(authors))
    members = _members(rng, 80)
    loans = _loans(rng, 400, len(books), len(members))
    return Library(authors, books, members, loans)


def _unique_names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _authors(rng: random.Random, n: int) -> list[dict[str, Any]]:
    names = _unique_names(rng, n, set())
    return [
        {"id": i + 1, "name": name, "country": rng.choice(COUNTRIES),
         "born": _random_date(rng, dt.date(1920, 1, 1), dt.date(1995, 12, 31))}
        for i, name in enumerate(names)
    ]


def _books(rng: random.Random, n: int, n_authors: int) -> list[dict[str, Any]]:
    titles: list[str] = []
    while len(titles) < n:
        title = _title(rng)
        if title not in titles:
            titles.append(title)
    return [
        {"id": i + 1, "title": title, "genre": rng.choice(GENRES), "year": rng.randint(1950, 2023),
         "pages": rng.randint(90, 900), "rating": round(rng.uniform(1.0, 5.0), 1),
         "price": round(rng.uniform(5, 40), 2), "author": rng.randint(1, n_authors)}
        for i, title in enumerate(titles)
    ]


def _title(rng: random.Random) -> str:
    """Varied titles; some carry an apostrophe or double quotes, which the query must quote correctly."""
    adj, noun, noun2 = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS)
    first = rng.choice(FIRST_NAMES)
    return rng.choice([
        f"The {adj} {noun}", f"The {adj} {noun}", f"{noun} of {rng.choice(PLACES)}", f"{first}'s {noun}",
        f"The {noun} and the {noun2}", f"A {adj} {noun}", f'The "{adj}" {noun}', f"{adj} {_plural(noun)}",
    ])


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def _members(rng: random.Random, n: int) -> list[dict[str, Any]]:
    names = _unique_names(rng, n, set())
    return [
        {"id": i + 1, "name": name, "city": rng.choice(CITIES),
         "joined": _random_date(rng, dt.date(2018, 1, 1), dt.date(2024, 6, 30))}
        for i, name in enumerate(names)
    ]


def _loans(rng: random.Random, n: int, n_books: int, n_members: int) -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "book": rng.randint(1, n_books), "member": rng.randint(1, n_members),
         "date": _random_date(rng, dt.date(2022, 1, 1), dt.date(2024, 6, 30)), "returned": rng.random() < 0.7}
        for i in range(n)
    ]


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def schema_markdown() -> str:
    """The schema as the Markdown table the reference and the RAG baseline use."""
    lines = ["# Shelf schema: the library dataset", ""]
    for table, fields in SCHEMA.items():
        lines += [f"## {table}", "", "| field | type | meaning |", "|---|---|---|"]
        for f in fields:
            kind = f"ref → {f.ref}" if f.ref else f.type
            lines.append(f"| {f.name} | {kind} | {f.doc} |")
        lines.append("")
    lines += [
        "Values: genres " + ", ".join(f'"{g}"' for g in GENRES) + ".",
        "",
        "Follow a `ref` field with a dot: `book.author.country` on a loan is the country of the book's author.",
        "",
    ]
    return "\n".join(lines)
