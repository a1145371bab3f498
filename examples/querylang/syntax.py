"""Shelf, a small pipeline query language: grammar, syntax tree, parser and canonical printer.

    books | where author.country = "Japan" and year in 1990..1999 | sort -rating | take 3 | pick title

A query names a source table, then stages separated by `|`. `print_query(parse_query(text))` gives the one
canonical spelling of a query; the generator only ever writes canonical queries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Union

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

GRAMMAR = r"""
query: SOURCE ("|" stage)*

?stage: "where" cond                          -> where
      | "sort" DESC? column                   -> sort
      | "take" INT                            -> take
      | "pick" column ("," column)*           -> pick
      | "count" ("by" column)?                -> count
      | AGG column ("by" column)?             -> aggregate

?cond: and_cond ("or" and_cond)*              -> or_
?and_cond: not_cond ("and" not_cond)*         -> and_
?not_cond: "not" atom                         -> not_
         | atom
?atom: "(" cond ")"
     | column OP value                        -> compare
     | column "in" "[" value ("," value)* "]" -> in_list
     | column "in" value ".." value           -> in_range
     | column "has" STRING                    -> has
     | column                                 -> flag

column: NAME ("." NAME)*
?value: NUMBER | STRING | DATE

SOURCE: "books" | "authors" | "members" | "loans"
AGG: "avg" | "sum" | "min" | "max"
OP: "<=" | ">=" | "=" | "<" | ">"
DESC: "-"
NAME: /[a-z_][a-z0-9_]*/
INT: /[0-9]+/
NUMBER: /[0-9]+(\.[0-9]+)?/
DATE: /@[0-9]{4}-[0-9]{2}-[0-9]{2}/
STRING: /"(?:[^"\\\n]|\\.)*"/

%import common.WS
%ignore WS
"""

# What a user reads in "expected ..." instead of lark's terminal names.
TERMINAL_NAMES = {
    "SOURCE": "a source (books, authors, members, loans)", "AGG": "avg, sum, min or max", "OP": "=, <, >, <= or >=",
    "DESC": "'-'", "NAME": "a field name", "INT": "a whole number", "NUMBER": "a number",
    "DATE": "a date like @2024-01-31", "STRING": 'a "double-quoted" string', "VBAR": "'|'", "COMMA": "','",
    "DOT": "'.'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "$END": "end of query",
}

Value = Union[int, float, str, dt.date]


# --- the syntax tree -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    column: str  # a dotted path: "author.country" follows the book's author
    op: str
    value: Value


@dataclass(frozen=True)
class InList:
    column: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class InRange:
    column: str
    low: Value
    high: Value  # inclusive


@dataclass(frozen=True)
class Has:
    column: str
    text: str  # case-insensitive substring


@dataclass(frozen=True)
class Flag:
    column: str  # a yes/no field, true as written: `returned`


@dataclass(frozen=True)
class Not:
    cond: "Cond"


@dataclass(frozen=True)
class And:
    conds: tuple["Cond", ...]


@dataclass(frozen=True)
class Or:
    conds: tuple["Cond", ...]


Cond = Union[Compare, InList, InRange, Has, Flag, Not, And, Or]


@dataclass(frozen=True)
class Where:
    cond: Cond


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class Take:
    n: int


@dataclass(frozen=True)
class Pick:
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Aggregate:
    fn: str  # count | avg | sum | min | max; the result column has the function's name
    column: str | None = None  # None for count
    by: str | None = None  # group rows by this column first


Stage = Union[Where, Sort, Take, Pick, Aggregate]


@dataclass(frozen=True)
class Query:
    source: str
    stages: tuple[Stage, ...] = ()


# --- parsing ---------------------------------------------------------------------------------------------------


class QuerySyntaxError(ValueError):
    """A query that does not parse: where (1-based line and column) and what the parser expected there."""

    def __init__(self, message: str, line: int, column: int, expected: tuple[str, ...] = ()):
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.expected = expected


class _ToTree(Transformer):
    def query(self, items):
        return Query(str(items[0]), tuple(items[1:]))

    def where(self, items):
        return Where(items[0])

    def sort(self, items):
        return Sort(items[-1], descending=len(items) == 2)

    def take(self, items):
        return Take(int(items[0]))

    def pick(self, items):
        return Pick(tuple(items))

    def count(self, items):
        return Aggregate("count", None, items[0] if items else None)

    def aggregate(self, items):
        return Aggregate(str(items[0]), items[1], items[2] if len(items) > 2 else None)

    def or_(self, items):
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self, items):
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self, items):
        return Not(items[0])

    def compare(self, items):
        return Compare(items[0], str(items[1]), items[2])

    def in_list(self, items):
        return InList(items[0], tuple(items[1:]))

    def in_range(self, items):
        return InRange(items[0], items[1], items[2])

    def has(self, items):
        return Has(items[0], items[1])

    def flag(self, items):
        return Flag(items[0])

    def column(self, items):
        return ".".join(str(t) for t in items)

    def NUMBER(self, token: Token) -> int | float:
        return float(token) if "." in token else int(token)

    def STRING(self, token: Token) -> str:
        return _string_value(token)

    def DATE(self, token: Token) -> dt.date:
        try:
            return dt.date.fromisoformat(token[1:])
        except ValueError:
            raise QuerySyntaxError(f"{token} is not a calendar date", token.line, token.column, ("a date like @2024-01-31",))


def _string_value(token: str) -> str:
    out, chars = [], iter(token[1:-1])
    for ch in chars:
        out.append(next(chars, "") if ch == "\\" else ch)
    return "".join(out)


_PARSER = Lark(GRAMMAR, start="query", parser="lalr")


def parse_query(text: str) -> Query:
    """Parse `text` into a Query, or raise QuerySyntaxError naming the line, column and what was expected."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text) from None
    try:
        return _ToTree().transform(tree)
    except Exception as e:  # lark wraps errors raised inside the transformer
        inner = getattr(e, "orig_exc", e)
        if isinstance(inner, QuerySyntaxError):
            raise inner from None
        raise


def _syntax_error(e: UnexpectedInput, text: str) -> QuerySyntaxError:
    expected = _expected_at_error(text)
    hint = f"; expected {', '.join(expected)}" if expected else ""
    if isinstance(e, UnexpectedCharacters):
        return QuerySyntaxError(f"unexpected character {text[e.pos_in_stream]!r}{hint}", e.line, e.column, expected)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        line, column = _end_position(text)
        return QuerySyntaxError(f"query ends too early{hint}", line, column, expected)
    token = e.token  # UnexpectedToken
    return QuerySyntaxError(f"unexpected {str(token)!r}{hint}", token.line, token.column, expected)


def _expected_at_error(text: str) -> tuple[str, ...]:
    """What the parser accepts where it stopped, readable (the lexer's own list merges parser states)."""
    interactive = _PARSER.parse_interactive(text)
    try:
        for _ in interactive.iter_parse():
            pass
    except UnexpectedInput:
        pass
    readable = set()
    for name in interactive.accepts():
        term = _TERMINALS.get(name)
        if name in TERMINAL_NAMES:
            readable.add(TERMINAL_NAMES[name])
        elif term is not None and term.pattern.type == "str":  # a keyword: show its text
            readable.add(f"'{term.pattern.value}'")
        else:
            readable.add(name)
    return tuple(sorted(readable))


_TERMINALS = {t.name: t for t in _PARSER.terminals}


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


# --- canonical printing ----------------------------------------------------------------------------------------


def print_query(query: Query) -> str:
    """The canonical spelling: one space around `|` and operators, `, ` between items, minimal parentheses."""
    return " | ".join([query.source, *(print_stage(s) for s in query.stages)])


def print_stage(stage: Stage) -> str:
    if isinstance(stage, Where):
        return "where " + print_cond(stage.cond)
    if isinstance(stage, Sort):
        return "sort " + ("-" if stage.descending else "") + stage.column
    if isinstance(stage, Take):
        return f"take {stage.n}"
    if isinstance(stage, Pick):
        return "pick " + ", ".join(stage.columns)
    if isinstance(stage, Aggregate):
        head = stage.fn if stage.column is None else f"{stage.fn} {stage.column}"
        return head + (f" by {stage.by}" if stage.by else "")
    raise TypeError(f"not a stage: {stage!r}")


def print_cond(cond: Cond) -> str:
    if isinstance(cond, Compare):
        return f"{cond.column} {cond.op} {print_value(cond.value)}"
    if isinstance(cond, InList):
        return f"{cond.column} in [{', '.join(print_value(v) for v in cond.values)}]"
    if isinstance(cond, InRange):
        return f"{cond.column} in {print_value(cond.low)}..{print_value(cond.high)}"
    if isinstance(cond, Has):
        return f"{cond.column} has {print_value(cond.text)}"
    if isinstance(cond, Flag):
        return cond.column
    if isinstance(cond, Not):
        inner = print_cond(cond.cond)
        return "not " + (f"({inner})" if isinstance(cond.cond, (And, Or)) else inner)
    if isinstance(cond, And):  # `and` binds tighter than `or`: only an `or` inside needs parentheses
        return " and ".join(f"({print_cond(c)})" if isinstance(c, Or) else print_cond(c) for c in cond.conds)
    if isinstance(cond, Or):
        return " or ".join(print_cond(c) for c in cond.conds)
    raise TypeError(f"not a condition: {cond!r}")


def print_value(value: Value) -> str:
    if isinstance(value, dt.date):
        return "@" + value.isoformat()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def canonicalize(text: str) -> str:
    """The canonical spelling of `text` (raises QuerySyntaxError when it does not parse)."""
    return print_query(parse_query(text))
