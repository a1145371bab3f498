"""CSV and TSV rows as dicts, each with the line it starts on; nothing in the file is dropped unreported.

`csv.DictReader` loses what a user would want to hear about: it skips blank lines (so line numbers taken
from the previous row drift by one per blank line), stops at the first field over 128 KiB, and reads a quote
that is never closed as one field holding the rest of the file. This reader counts lines itself, lifts the
size limit, recovers after a bad row and says where a quote ran away.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tunesmith.data.schema import Issue

# A long document in one cell is ordinary data; the default 131,072-character limit made it (and every row
# after it) unreadable. The limit is process-wide in the csv module, so raise it once, never lower it.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
_OTHER_DELIMITERS = {";": "semicolons (what Excel writes where the decimal separator is a comma)", "\t": "tabs"}


class _Lines:
    """The file's lines decoded as UTF-8, counting quotes and noting lines that are not UTF-8."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.line, self.quotes, self.not_utf8 = f, 0, 0, []

    def __iter__(self) -> Iterator[str]:
        for raw in self.f:
            self.line += 1
            try:
                text = raw.decode("utf-8-sig" if self.line == 1 else "utf-8")
            except UnicodeDecodeError as e:
                self.not_utf8.append(Issue(self.line, "not_utf8", f"byte {raw[e.start]:#04x} at column "
                                           f"{e.start + 1} is not valid UTF-8 (save the file as UTF-8)",
                                           column=e.start + 1))
                text = raw.decode("utf-8", errors="replace")
            self.quotes += text.count('"')
            yield text


def iter_csv_rows(path: Path, delimiter: str = ",") -> Iterator[tuple[int, Any]]:
    """`(line, {column: cell})` per row (surplus cells under the key None, missing ones None, as DictReader
    does), or `(line, Issue)` for a row that cannot be read; the header is line 1."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    with open(path, "rb") as f:
        lines = _Lines(f)
        delimiter, note = _delimiter(path, delimiter)
        if note is not None:
            yield 1, note
        reader = csv.reader(lines, delimiter=delimiter)
        columns: list[str] | None = None
        while True:
            start, quotes_before = lines.line + 1, lines.quotes
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # the reader starts afresh on the next line
                why = ("a carriage return (\\r) inside an unquoted cell: quote the cell or remove the \\r"
                       if "new-line character" in str(e) else str(e))
                yield start, Issue(start, "invalid_csv", f"unreadable CSV row: {why}")
                continue
            bad = [i for i in lines.not_utf8 if i.line >= start]
            lines.not_utf8.clear()
            if bad:
                yield start, bad[0]
            elif not row:
                yield start, Issue(start, "blank_line", "empty line (skipped)")
            elif lines.line > start and (lines.quotes - quotes_before) % 2:  # a row over lines is quoted, and
                # quotes in a quoted field come in pairs ("" is two): an odd count ran to the end unclosed
                yield start, _runaway_quote(start, lines.line)
            elif columns is None:
                columns = row
            else:
                yield start, _as_dict(columns, row)


def _delimiter(path: Path, delimiter: str) -> tuple[str, Issue | None]:
    """The delimiter the header is written with, and a warning when that is not the expected one."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig", errors="replace")
    if delimiter in first:
        return delimiter, None
    for other, what in _OTHER_DELIMITERS.items():
        if other != delimiter and other in first:
            return other, Issue(1, "csv_delimiter", f"the header has no {delimiter!r} but is separated by "
                                       f"{what}: read it as such (most tools expect commas in a .csv)")
    return delimiter, None


def _runaway_quote(start: int, end: int) -> Issue:
    span = f"lines {start}-{end}" if end > start else f"line {start}"
    return Issue(start, "invalid_csv", f"a quote (\") opened in the row on line {start} is never closed, so {span} "
                 "were read as one row (not used): close the quote, or write a literal quote as \"\"")


def _as_dict(columns: list[str], row: list[str]) -> dict[Any, Any]:
    record: dict[Any, Any] = dict(zip(columns, row))
    for name in columns[len(row):]:
        record.setdefault(name, None)
    if len(row) > len(columns):
        record[None] = row[len(columns):]
    return record
