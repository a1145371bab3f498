"""Graders for Shelf answers, for `tunesmith eval --grader python:examples.querylang.grader:FUNC`.

Each takes (model output, reference query) and returns (score 0 or 1, detail saying why):

    parse_valid       the output parses as a Shelf query
    execution_match   the output runs and returns the same rows as the reference (order only where it sorts)
    exact_match       the output is the reference, character for character

A model may wrap its query in a ``` fence or put a line of chatter before it; the query is taken out of that
first, so prompting baselines are judged on their query, not on their manners.
"""

from __future__ import annotations

import re

from examples.querylang.dataset import SCHEMA
from examples.querylang.executor import QueryError, results_match, run_query
from examples.querylang.syntax import QuerySyntaxError, parse_query

_FENCE = re.compile(r"```[\w-]*\s*\n?(.*?)```", re.S)
_STARTS_QUERY = re.compile(r"^\s*(?:" + "|".join(SCHEMA) + r")\b")


def extract_query(output: str) -> str:
    """The query inside `output`: a fenced block's content, else the first line that starts with a source."""
    fenced = _FENCE.search(output)
    text = fenced.group(1) if fenced else output
    for line in text.splitlines():
        line = line.strip().strip("`").removeprefix("Query:").strip()
        if _STARTS_QUERY.match(line):
            return line
    return text.strip()


def parse_valid(output: str, reference: str | None = None) -> tuple[float, str]:
    try:
        parse_query(extract_query(output))
    except QuerySyntaxError as e:
        return 0.0, str(e)
    return 1.0, "parses"


def execution_match(output: str, reference: str | None) -> tuple[float, str]:
    if reference is None:
        return 0.0, "no reference query"
    expected = run_query(reference)  # a reference that fails is a bug in the data: let it raise
    try:
        got = run_query(extract_query(output))
    except (QuerySyntaxError, QueryError) as e:
        return 0.0, f"{type(e).__name__}: {e}"
    if results_match(got, expected):
        return 1.0, f"same {len(expected.rows)} rows"
    if set(got.columns) != set(expected.columns):
        return 0.0, f"different columns: got {', '.join(got.columns)}; expected {', '.join(expected.columns)}"
    return 0.0, f"different rows: got {len(got.rows)}, expected {len(expected.rows)}" + (
        " (order matters: the reference sorts)" if expected.ordered and len(got.rows) == len(expected.rows) else "")


def exact_match(output: str, reference: str | None) -> tuple[float, str]:
    if reference is None:
        return 0.0, "no reference query"
    query = extract_query(output)
    return (1.0, "identical") if query == reference.strip() else (0.0, f"differs from {reference.strip()!r}")
