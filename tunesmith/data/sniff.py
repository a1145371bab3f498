"""What a data file is, from its first bytes and lines, before a reader parses it.

A reader that guessed wrong reports one useless error per line (a gzip file, UTF-16 from PowerShell,
pretty-printed JSON) or, worse, reads the first JSON array and drops the lines after it. These checks look
once and name the file for what it is, with the command that fixes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.data.schema import Issue

# (leading bytes, what the file is, how to get the text out)
_BINARY_MAGIC = [
    (b"\x1f\x8b", "gzip-compressed", "Decompress it first: `gunzip -k {path}`"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one too)",
     "Unzip it, or open the sheet and save it as 'CSV UTF-8 (Comma delimited)'"),
    (b"BZh", "bzip2-compressed", "Decompress it first: `bunzip2 -k {path}`"),
    (b"\xfd7zXZ\x00", "xz-compressed", "Decompress it first: `unxz -k {path}`"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "Decompress it first: `unzstd {path}`"),
]
_UTF16_FIX = ("Save it as UTF-8: in PowerShell `Get-Content {path} | Set-Content -Encoding utf8 fixed.jsonl`, "
              "or `iconv -f UTF-16 -t UTF-8 {path} > fixed.jsonl`")
_HEAD_BYTES = 4096
_PRETTY_PROBE_BYTES = 4 << 20  # how far to look for the end of a first JSON object spread over lines


def whole_file_problem(path: Path) -> Issue | None:
    """One issue for a file that is not UTF-8 text at all (compressed, UTF-16/32, binary), else None."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    for magic, what, fix in _BINARY_MAGIC:
        if head.startswith(magic) and (magic != b"BZh" or head[3:4].isdigit()):
            return Issue(None, "binary_file", f"the file is {what}, not text. {fix.format(path=path)}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        bits = "32" if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "16"
        return Issue(None, "not_utf8", f"the file is UTF-{bits} text (what Windows PowerShell's `>` and Out-File "
                     f"write), not UTF-8. {_UTF16_FIX.format(path=path)}")
    if b"\x00" in head:
        return Issue(None, "binary_file", "the file holds NUL bytes: it is a binary file, not JSONL or CSV text")
    return None


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 without a byte-order mark: ASCII text with a NUL beside every character."""
    sample = head[:64]
    odd, even = sample[1::2], sample[0::2]
    return len(sample) >= 8 and (odd.count(0) == len(odd) or even.count(0) == len(even))


def json_layout(path: Path) -> tuple[str, Issue | None]:
    """How a JSON file is laid out: "array" (one JSON array), "jsonl" (a value per line) or "pretty" (objects
    spread over several lines, with the one issue that says so). Decided from the first line and what follows
    it, so `[...]` on line 1 followed by more lines is JSONL, never an array that hides them."""
    with open(path, "rb") as f:
        first = f.readline()
        while first and not first.strip():
            first = f.readline()
        more = _has_more_text(f)
    text = first.decode("utf-8-sig", errors="replace").strip()
    if not text.startswith(("[", "{")):
        return "jsonl", None
    complete = _parses(text)
    if text.startswith("["):
        return ("jsonl" if complete and more else "array"), None
    if complete or not more:
        return "jsonl", None
    return _pretty_or_jsonl(path)


def _has_more_text(f) -> bool:
    while True:
        chunk = f.read(1 << 16)
        if not chunk:
            return False
        if chunk.strip():
            return True


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _pretty_or_jsonl(path: Path) -> tuple[str, Issue | None]:
    """A first line `{` that is not JSON on its own: pretty-printed if a whole object decodes over the next
    lines (then say so once, instead of one invalid_json per line)."""
    with open(path, "rb") as f:
        head = f.read(_PRETTY_PROBE_BYTES).decode("utf-8-sig", errors="replace")
    start = len(head) - len(head.lstrip())
    try:
        _, end = json.JSONDecoder().raw_decode(head, start)
    except (ValueError, RecursionError):
        return "jsonl", None
    if "\n" not in head[start:end]:  # the object fits on its first line: that line has other trouble
        return "jsonl", None
    first_line, last_line = head.count("\n", 0, start) + 1, head.count("\n", 0, end) + 1
    return "pretty", Issue(None, "not_jsonl", (
        f"the file holds pretty-printed JSON: its first object spans lines {first_line}-{last_line}, but JSONL "
        f"needs one object per line; rewrite it with `jq -c . {path} > fixed.jsonl` (or in Python: json.dumps(obj) per "
        "line, without indent)"))
