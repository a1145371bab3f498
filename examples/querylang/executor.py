"""Run a Shelf query over the library dataset and return its rows.

Stages run left to right over a list of rows. Until `pick` or an aggregate, a row is a record of the source
table and a dotted column follows `ref` fields (`book.author.country`); afterwards a row holds only the
columns that stage produced. Type mistakes (a date compared with a string, `returned = 1`) are errors, as a
real engine would report them, not silently empty results.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from examples.querylang.dataset import SCHEMA, Field, Library, build_library
from examples.querylang.syntax import (
    Aggregate, And, Compare, Cond, Flag, Has, InList, InRange, Not, Or, Pick, Query, Sort, Take, Where, parse_query,
)


class QueryError(ValueError):
    """A query that parses but cannot run: unknown field, wrong value type, aggregate over text..."""


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    ordered: bool  # a `sort` stage made row order part of the answer

    def normalized(self) -> list[tuple[tuple[str, Any], ...]]:
        """Rows as (column, value) pairs sorted by column, in order if ordered else sorted: for comparison."""
        rows = [tuple(sorted(zip(self.columns, (_comparable(v) for v in row)))) for row in self.rows]
        return rows if self.ordered else sorted(rows, key=repr)


def results_match(got: Result, expected: Result) -> bool:
    """Same answer: the same rows (in the same order when the expected query sorts)."""
    if expected.ordered:
        return got.normalized() == expected.normalized()
    return sorted(got.normalized(), key=repr) == expected.normalized()


def _comparable(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


@dataclass
class _Rows:
    table: str | None  # the source table while rows are still its records
    rows: list[dict[str, Any]]
    columns: tuple[str, ...]


def run_query(query: Query | str, library: Library | None = None) -> Result:
    """Execute `query` (a Query or its text) and return the result rows."""
    if isinstance(query, str):
        query = parse_query(query)
    library = library or build_library()
    if query.source not in SCHEMA:
        raise QueryError(f"unknown source {query.source!r}; sources: {', '.join(SCHEMA)}")
    state = _Rows(query.source, list(library.table(query.source)), tuple(f.name for f in SCHEMA[query.source]))
    ordered = False
    for stage in query.stages:
        state = _run_stage(stage, state, library)
        ordered = ordered or isinstance(stage, Sort)
    rows = [tuple(_value(row, c, state, library) for c in state.columns) for row in state.rows]
    return Result(state.columns, rows, ordered)


def _run_stage(stage: Any, state: _Rows, library: Library) -> _Rows:
    if isinstance(stage, Where):
        _check_cond(stage.cond, state)
        return _Rows(state.table, [r for r in state.rows if _holds(stage.cond, r, state, library)], state.columns)
    if isinstance(stage, Sort):
        _column_type(stage.column, state)
        # Stable sort with missing values last: equal keys keep the previous order (by id at first).
        present = [r for r in state.rows if _value(r, stage.column, state, library) is not None]
        missing = [r for r in state.rows if _value(r, stage.column, state, library) is None]
        present.sort(key=lambda r: _value(r, stage.column, state, library), reverse=stage.descending)
        return _Rows(state.table, present + missing, state.columns)
    if isinstance(stage, Take):
        return _Rows(state.table, state.rows[: stage.n], state.columns)
    if isinstance(stage, Pick):
        for column in stage.columns:
            _column_type(column, state)
        rows = [{c: _value(r, c, state, library) for c in stage.columns} for r in state.rows]
        return _Rows(None, rows, stage.columns)
    if isinstance(stage, Aggregate):
        return _aggregate(stage, state, library)
    raise QueryError(f"unknown stage {stage!r}")


def _aggregate(stage: Aggregate, state: _Rows, library: Library) -> _Rows:
    if stage.column is not None:
        kind = _column_type(stage.column, state)
        allowed = ("int", "float") if stage.fn in ("avg", "sum") else ("int", "float", "date", "str")
        if kind not in allowed:
            raise QueryError(f"{stage.fn} needs a {' or '.join(allowed)} column; {stage.column} is {kind}")
    groups: dict[Any, list[dict[str, Any]]] = {}
    if stage.by is None:
        groups[None] = state.rows
    else:
        _column_type(stage.by, state)
        for row in state.rows:
            groups.setdefault(_value(row, stage.by, state, library), []).append(row)
    out = []
    for key in sorted(groups, key=lambda k: (k is None, k if k is not None else 0)):
        values = [] if stage.column is None else [_value(r, stage.column, state, library) for r in groups[key]]
        row = {stage.fn: _reduce(stage.fn, values, len(groups[key]))}
        out.append(row if stage.by is None else {stage.by: key, **row})
    columns = (stage.fn,) if stage.by is None else (stage.by, stage.fn)
    return _Rows(None, out, columns)


def _reduce(fn: str, values: list[Any], n: int) -> Any:
    values = [v for v in values if v is not None]
    if fn == "count":
        return n
    if not values:
        return None
    if fn == "avg":
        return round(sum(values) / len(values), 2)
    if fn == "sum":
        return round(sum(values), 2)
    return min(values) if fn == "min" else max(values)


# --- columns ---------------------------------------------------------------------------------------------------


def _field(table: str, name: str) -> Field:
    for f in SCHEMA[table]:
        if f.name == name:
            return f
    fields = ", ".join(f.name for f in SCHEMA[table])
    raise QueryError(f"{table} has no field {name!r}; fields: {fields}")


def _column_type(column: str, state: _Rows) -> str:
    """The type of `column` in the current rows (raises QueryError when there is no such column)."""
    if state.table is None:
        if column not in state.columns:
            raise QueryError(f"no column {column!r} after pick/aggregate; columns: {', '.join(state.columns)}")
        sample = next((r[column] for r in state.rows if r[column] is not None), None)
        return _python_type(sample)
    table, parts = state.table, column.split(".")
    for i, part in enumerate(parts):
        f = _field(table, part)
        if i == len(parts) - 1:
            return "int" if f.type == "ref" else f.type
        if f.ref is None:
            raise QueryError(f"{'.'.join(parts[: i + 1])} is a {f.type}, not a link: it has no field {parts[i + 1]!r}")
        table = f.ref
    raise AssertionError("unreachable")


def _python_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, (int, float)):
        return "float" if isinstance(value, float) else "int"
    return "str"


def _value(row: dict[str, Any], column: str, state: _Rows, library: Library) -> Any:
    if state.table is None:
        return row[column]
    table, record, parts = state.table, row, column.split(".")
    for i, part in enumerate(parts):
        f = _field(table, part)
        value = record[part]
        if f.ref is None or i == len(parts) - 1:
            return value  # a link named last gives its id
        table, record = f.ref, library.by_id(f.ref)[value]
    return None


# --- conditions ------------------------------------------------------------------------------------------------


def _check_cond(cond: Cond, state: _Rows) -> None:
    """Type-check a condition once, before any row is read."""
    if isinstance(cond, (And, Or)):
        for c in cond.conds:
            _check_cond(c, state)
    elif isinstance(cond, Not):
        _check_cond(cond.cond, state)
    elif isinstance(cond, Flag):
        kind = _column_type(cond.column, state)
        if kind != "bool":
            raise QueryError(f"{cond.column} is {kind}, not yes/no: compare it, e.g. `{cond.column} = ...`")
    elif isinstance(cond, Has):
        kind = _column_type(cond.column, state)
        if kind != "str":
            raise QueryError(f"`has` searches text; {cond.column} is {kind}")
    else:
        kind = _column_type(cond.column, state)
        values = (cond.value,) if isinstance(cond, Compare) else (
            cond.values if isinstance(cond, InList) else (cond.low, cond.high))
        for v in values:
            _check_value(cond.column, kind, v)


def _check_value(column: str, kind: str, value: Any) -> None:
    if kind == "bool":
        raise QueryError(f"{column} is yes/no: write `where {column}` or `where not {column}`")
    ok = {"int": (int, float), "float": (int, float), "str": (str,), "date": (dt.date,)}[kind]
    if not isinstance(value, ok):
        hint = " (dates are written @YYYY-MM-DD)" if kind == "date" else ""
        raise QueryError(f"{column} is {kind} but was compared with {type(value).__name__} {value!r}{hint}")


def _holds(cond: Cond, row: dict[str, Any], state: _Rows, library: Library) -> bool:
    if isinstance(cond, And):
        return all(_holds(c, row, state, library) for c in cond.conds)
    if isinstance(cond, Or):
        return any(_holds(c, row, state, library) for c in cond.conds)
    if isinstance(cond, Not):
        return not _holds(cond.cond, row, state, library)
    value = _value(row, cond.column, state, library)
    if isinstance(cond, Flag):
        return bool(value)
    if value is None:
        return False
    if isinstance(cond, Has):
        return cond.text.lower() in value.lower()
    if isinstance(cond, InList):
        return value in cond.values
    if isinstance(cond, InRange):
        return cond.low <= value <= cond.high
    return _compare(value, cond.op, cond.value)


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return left == right
    if op == "<":
        return left < right
    if op == ">":
        return left > right
    if op == "<=":
        return left <= right
    return left >= right
