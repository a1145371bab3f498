"""Read every input format into Conversations, and write them back out.

Formats: `chat` (OpenAI chat JSONL, with tools), `prompt-completion` (OpenAI legacy JSONL), `alpaca`
(instruction/input/output), `sharegpt` (conversations of from/value turns) and `csv` (a column mapping).
JSON files holding one array of records (how Alpaca and ShareGPT usually ship) are read too.
Each non-chat record is first turned into an OpenAI chat example, so one schema check covers them all.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from tunesmith.conversation import Conversation, Message
from tunesmith.data.csv_rows import iter_csv_rows
from tunesmith.data.schema import Issue, RecordError, chat_example_issues, not_an_object_message, present_fields
from tunesmith.data.sniff import json_layout, whole_file_problem

FORMATS = ("chat", "prompt-completion", "alpaca", "sharegpt", "csv", "preference")
WRITABLE_FORMATS = ("chat", "prompt-completion", "alpaca", "sharegpt")
_FORMAT_ALIASES = {"openai": "chat", "jsonl": "chat", "messages": "chat", "completion": "prompt-completion",
                   "prompt_completion": "prompt-completion", "legacy": "prompt-completion", "tsv": "csv",
                   "dpo": "preference"}
CSV_TARGETS = ("system", "prompt", "completion")
# Column names a CSV gets mapped by when no --columns is given.
_CSV_DEFAULTS = {
    "system": ("system", "system_prompt", "sys"),
    "prompt": ("prompt", "question", "instruction", "input", "user", "query"),
    "completion": ("completion", "answer", "output", "response", "assistant"),
}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                   "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool"}
PREFERENCE_FORMAT = "preference"  # pairs for DPO; read by tunesmith.data.preference
_DETECT_LINES = 50  # how far detection looks for a first readable record


class DataError(Exception):
    """A record that cannot be read, naming the file, line and field."""

    def __init__(self, path: Path | str, line: int | None, message: str, field: str | None = None,
                 code: str | None = None):
        self.path, self.line, self.field, self.code, self.message = Path(path), line, field, code, message
        where = f"{path}" + (f":{line}" if line is not None else "") + (f" ({field})" if field else "")
        super().__init__(f"{where}: {message}")


# --- reading --------------------------------------------------------------------------------------------------


def normalize_format(fmt: str) -> str:
    name = _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if name != "auto" and name not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; expected auto or one of: {', '.join(FORMATS)}")
    return name


def parse_column_map(spec: str | None) -> dict[str, str] | None:
    """`"prompt=question,completion=answer,system=sys"` -> {"prompt": "question", ...}."""
    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        target, sep, column = part.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not column or target not in CSV_TARGETS:
            raise ValueError(f"bad column mapping {part!r}: expected TARGET=COLUMN with TARGET one of "
                             + ", ".join(CSV_TARGETS))
        mapping[target] = column
    if "prompt" not in mapping or "completion" not in mapping:
        raise ValueError("a column mapping needs at least prompt=COLUMN and completion=COLUMN")
    return mapping


def detect_format(path: Path | str) -> str:
    """The format of `path`, from its suffix (CSV/TSV) or the keys of its first readable record."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    for n, (_, record) in enumerate(iter_records(path, "chat")):
        if isinstance(record, dict):
            return format_of_record(record)
        if n >= _DETECT_LINES:
            break
    return "chat"  # nothing readable: the chat checks will say what is wrong


def is_preference_record(record: Any) -> bool:
    """OpenAI's preferred_output / non_preferred_output, or TRL's chosen / rejected."""
    return isinstance(record, dict) and ("preferred_output" in record or "non_preferred_output" in record
                                         or ("chosen" in record and "rejected" in record))


def format_of_record(record: dict[str, Any]) -> str:
    if is_preference_record(record):  # before prompt-completion: TRL's pairs have a `prompt` too
        return PREFERENCE_FORMAT
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record or "completion" in record:
        return "prompt-completion"
    return "chat"


def require_readable_file(path: Path | str) -> None:
    """Raise DataError unless `path` is a regular file this process may read (one line, no traceback)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DataError(path, None, "not a file (a directory?)")
        open(path, "rb").close()
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as e:  # PermissionError above all: running as another user, or chmod 000
        raise DataError(path, None, f"cannot be read: {e.strerror or e}") from None


def iter_records(path: Path | str, fmt: str = "auto") -> Iterator[tuple[int | None, Any]]:
    """Stream `(line, record)` from a file: a parsed JSON value (a dict, for CSV), or an `Issue` when the line
    cannot be read (invalid_json, invalid_csv, not_utf8, invalid_unicode, blank_line). A file that is not
    text at all (gzip, UTF-16, pretty-printed JSON) gives one `(None, Issue)` instead of one per line.
    Memory stays flat for JSONL and CSV."""
    path = Path(path)
    fmt = normalize_format(fmt)
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() in (".csv", ".tsv") else "chat"
    problem = whole_file_problem(path)
    if problem is not None:
        yield None, problem
        return
    if fmt == "csv":
        yield from iter_csv_rows(path, "\t" if path.suffix.lower() == ".tsv" else ",")
        return
    layout, problem = json_layout(path)
    if problem is not None:
        yield None, problem
    elif layout == "array":
        yield from _iter_json_array(path)
    else:
        yield from _iter_jsonl(path)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):  # Azure writes UTF-8 with a BOM
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, Issue(line_no, "not_utf8", f"byte {raw[e.start]:#04x} at column {e.start + 1} is not "
                                     "valid UTF-8 (save the file as UTF-8)", column=e.start + 1)
                continue
            if not text.strip():
                yield line_no, Issue(line_no, "blank_line", "empty line (skipped)")
                continue
            yield line_no, _parsed_line(text.rstrip("\r\n"), line_no)  # rstrip: an error at the end keeps its column


def _parsed_line(text: str, line: int) -> Any:
    """The JSON value of one line, or the Issue that says why it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return Issue(line, "invalid_json", f"invalid JSON at column {e.colno}: {e.msg}", column=e.colno)
    except (ValueError, RecursionError) as e:  # a 5,000-digit number, or arrays nested thousands deep
        return Issue(line, "invalid_json", f"invalid JSON: {_short(e)}")
    return _unicode_issue(value, text, line) or value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unicode_issue(value: Any, text: str, line: int) -> Issue | None:
    """An issue when a string in `value` holds a lone surrogate: only a `\ud800`-style escape makes one (the
    bytes were valid UTF-8), and nothing downstream can encode it."""
    if not _SURROGATE_ESCAPE.search(text):
        return None
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(f"{where}.{k}" if where else str(k), v) for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(f"{where}[{k}]", v) for k, v in enumerate(item)]
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                return Issue(line, "invalid_unicode", f"{where or 'the value'} holds a lone surrogate escape "
                             f"(\\u{ord(item[e.start]):04x}), half of a UTF-16 pair with no other half: it is "
                             "not a character; remove it or write the whole character", field=where or None)
    return None


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return "nested too deeply" if isinstance(e, RecursionError) else text[:200]


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """Records of a JSON array file, each with the line it starts on (the whole file is in memory). Anything
    after the array's end is reported, never dropped in silence."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        yield line, Issue(line, "not_utf8", f"byte at offset {e.start} is not valid UTF-8 (the array is not read)",
                          column=e.start + 1)
        return
    decoder = json.JSONDecoder()
    pos, line = text.index("[") + 1, text.count("\n", 0, text.index("[")) + 1
    while True:
        start = _skip_blank(text, pos)
        line += text.count("\n", pos, start)
        if start >= len(text):
            yield line, Issue(line, "invalid_json", "the JSON array is never closed with `]` (a truncated file?)")
            return
        if text[start] == "]":
            break
        try:
            record, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as e:
            yield e.lineno, Issue(e.lineno, "invalid_json", f"invalid JSON at column {e.colno}: {e.msg} "
                                  "(the rest of the array is not read)", column=e.colno)
            return
        except (ValueError, RecursionError) as e:
            yield line, Issue(line, "invalid_json", f"invalid JSON: {_short(e)} (the rest of the array is not read)")
            return
        yield line, _unicode_issue(record, text[start:end], line) or record
        line += text.count("\n", start, end)
        pos = comma = _skip_blank(text, end)
        if comma < len(text) and text[comma] == ",":
            line, pos = line + text.count("\n", end, comma), comma + 1
        else:
            pos = end  # the next turn counts the newlines from here
    yield from _after_array(text, start + 1, line)


def _after_array(text: str, pos: int, line: int) -> Iterator[tuple[int, Issue]]:
    after = _skip_blank(text, pos)
    if after < len(text):
        first = line + text.count("\n", pos, after)
        last = first + text.count("\n", after, len(text.rstrip()))
        yield first, Issue(first, "data_after_array", f"the JSON array ends on line {line}, but lines {first}-{last} "
                           "hold more (not read): a file is either one JSON array or JSONL, one example per line")


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


# --- records -> chat examples -> Conversations -----------------------------------------------------------------


def to_chat_example(record: Any, fmt: str, column_map: dict[str, str] | None = None) -> Any:
    """The OpenAI chat example a record of `fmt` stands for. Raises RecordError for format-level problems;
    the chat schema (`chat_example_issues`) checks the rest."""
    if fmt in ("chat", PREFERENCE_FORMAT):  # a preference record is checked by data.preference
        return record
    if not isinstance(record, dict):
        raise RecordError("data_type", not_an_object_message(record))
    if fmt == "prompt-completion":
        return _single_turn(None, _text_field(record, "prompt"), _text_field(record, "completion"))
    if fmt == "alpaca":
        return _alpaca_example(record)
    if fmt == "sharegpt":
        return _sharegpt_example(record)
    if fmt == "csv":
        return _csv_example(record, column_map)
    raise ValueError(f"unknown format {fmt!r}")


def _single_turn(system: str | None, prompt: str, completion: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]}


def _text_field(record: dict[str, Any], key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise RecordError("missing_field", f"missing field {key!r}", field=key)
        return ""
    if not isinstance(value, str):
        raise RecordError("data_type", f"field {key!r} must be text, got {type(value).__name__}", field=key)
    return value


def _alpaca_example(record: dict[str, Any]) -> dict[str, Any]:
    instruction, extra = _text_field(record, "instruction"), _text_field(record, "input", required=False)
    example = _single_turn(_text_field(record, "system", required=False) or None,
                           f"{instruction}\n\n{extra}" if extra.strip() else instruction,
                           _text_field(record, "output"))
    history = record.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 for h in history):
        raise RecordError("data_type", "`history` must be a list of [question, answer] pairs", field="history")
    earlier = [{"role": role, "content": text} for q, a in history
               for role, text in (("user", q), ("assistant", a))]
    at = 1 if example["messages"][0]["role"] == "system" else 0
    example["messages"][at:at] = earlier
    return example


def _sharegpt_example(record: dict[str, Any]) -> dict[str, Any]:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError("missing_messages_list", "`conversations` is missing or not a non-empty list",
                          field="conversations")
    system = _text_field(record, "system", required=False)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    pending_calls: list[str] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError("data_type", f"turn {i} is not an object", field=f"conversations[{i}]", index=i)
        sender, value = turn.get("from", turn.get("role")), turn.get("value", turn.get("content"))
        if not isinstance(sender, str) or sender not in _SHAREGPT_ROLES:  # str first: a list is unhashable
            raise RecordError("unrecognized_role", f"turn {i} is from {sender!r}; expected one of "
                              + ", ".join(_SHAREGPT_ROLES), field=f"conversations[{i}].from", index=i)
        message: dict[str, Any] = {"role": _SHAREGPT_ROLES[sender], "content": value}
        if sender == "function_call":
            call_id = f"call_{i}"
            message = {"role": "assistant", "content": None, "tool_calls": [_sharegpt_call(value, call_id, i)]}
            pending_calls.append(call_id)
        elif message["role"] == "tool":
            message["tool_call_id"] = pending_calls.pop(0) if pending_calls else f"call_{i}"
        if "weight" in turn:
            message["weight"] = turn["weight"]
        messages.append(message)
    example: dict[str, Any] = {"messages": messages}
    tools = record.get("tools")
    if isinstance(tools, str) and tools.strip():
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise RecordError("invalid_tools", f"`tools` is not valid JSON ({e.msg})", field="tools") from e
    if tools:
        example["tools"] = [t if "function" in t else {"type": "function", "function": t} for t in tools] \
            if isinstance(tools, list) and all(isinstance(t, dict) for t in tools) else tools
    return example


def _sharegpt_call(value: Any, call_id: str, i: int) -> dict[str, Any]:
    try:
        call = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as e:
        raise RecordError("invalid_tool_calls", f"function_call turn {i} is not JSON ({e.msg})",
                          field=f"conversations[{i}].value", index=i) from e
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise RecordError("invalid_tool_calls", f"function_call turn {i} needs {{\"name\", \"arguments\"}}",
                          field=f"conversations[{i}].value", index=i)
    arguments = call.get("arguments", {})
    return {"id": call_id, "type": "function",
            "function": {"name": call["name"],
                         "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}


def csv_columns(header: Iterable[Any], column_map: dict[str, str] | None) -> dict[str, str]:
    """The mapping from targets (prompt, completion, system) to the header's columns: `column_map` checked
    against the header, or the well-known names. Raises RecordError naming what is missing."""
    names = [name for name in header if name is not None]
    if column_map is None:
        return _default_column_map(names)
    for column in column_map.values():
        if column not in names:
            raise RecordError("missing_field", f"no column {column!r} (the header has: {', '.join(names)})",
                              field=column)
    return column_map


def _csv_example(row: dict[str, Any], column_map: dict[str, str] | None) -> dict[str, Any]:
    if None in row:  # surplus cells are filed under None
        raise RecordError("data_type", f"the row has {len(row) - 1 + len(row[None])} cells but the header names "
                          f"{len(row) - 1}")
    mapping = csv_columns(row, column_map)
    values = {}
    for target in CSV_TARGETS:
        column = mapping.get(target)
        if column is None:
            continue
        if row[column] is None:
            raise RecordError("missing_field", f"the row ends before column {column!r}", field=column)
        values[target] = row[column]
    return _single_turn(values.get("system") or None, values.get("prompt", ""), values.get("completion", ""))


def _default_column_map(names: list[str]) -> dict[str, str]:
    lowered = {name.strip().lower(): name for name in names}
    mapping = {}
    for target, candidates in _CSV_DEFAULTS.items():
        found = next((lowered[c] for c in candidates if c in lowered), None)
        if found is not None:
            mapping[target] = found
    for target in ("prompt", "completion"):
        if target not in mapping:
            raise RecordError("missing_field", f"no {target} column (looked for {', '.join(_CSV_DEFAULTS[target])}); "
                              "name it with --columns prompt=COL,completion=COL", field=target)
    return mapping


def conversation_from_chat(example: dict[str, Any]) -> Conversation:
    """A Conversation from a chat example that passed the schema checks: text parts joined, legacy
    `function_call` / `function` role turned into tool calls."""
    messages, legacy_ids = [], {}
    for i, raw in enumerate(example["messages"]):
        d = present_fields(raw)
        if isinstance(d.get("content"), list):
            d["content"] = "".join(part["text"] for part in d["content"])
        if d.get("function_call"):
            call = d.pop("function_call")
            legacy_ids[call.get("name")] = f"call_{i}"
            arguments = call.get("arguments", "{}")
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
            d["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                "function": {"name": call.get("name"), "arguments": arguments}}]
        if d["role"] == "function":
            d["role"], d["tool_call_id"] = "tool", legacy_ids.get(d.get("name"), f"call_{i}")
        messages.append(Message.from_openai(d))
    tools = example.get("tools")
    if not tools and example.get("functions"):  # the legacy function-calling format: its functions are tools
        tools = [{"type": "function", "function": f} for f in example["functions"]]
    return Conversation(messages=messages, tools=tools)


def read_conversations(path: Path | str, fmt: str = "auto",
                       column_map: dict[str, str] | None = None) -> list[Conversation]:
    """Every example of a data file as Conversations; raises DataError at the first bad record
    (use `validate.validate_file` to see all of them)."""
    return [conversation for _, conversation in iter_numbered_conversations(path, fmt, column_map)]


def iter_examples(path: Path | str, fmt: str, column_map: dict[str, str] | None = None
                  ) -> Iterator[tuple[int | None, Any]]:
    """Stream `(line, chat example)` for each record of a file of format `fmt` (not "auto"), or `(line, Issue)`
    for one that cannot be read or converted. A CSV whose header lacks a mapped column is said once, not
    once per row. The chat schema (`chat_example_issues`) is left to the caller."""
    mapping: dict[str, str] | None = None
    for line, record in iter_records(path, fmt):
        if isinstance(record, Issue):
            yield line, record
            continue
        if fmt == "csv" and mapping is None:
            try:
                mapping = csv_columns(record, column_map)
            except RecordError as e:
                yield 1, Issue(1, e.code, f"{e.message}; no row can be read", field=e.field)
                return
        try:
            yield line, to_chat_example(record, fmt, mapping)
        except RecordError as e:
            yield line, Issue(line, e.code, e.message, e.index, e.field)


def iter_numbered_conversations(path: Path | str, fmt: str = "auto",
                                column_map: dict[str, str] | None = None) -> Iterator[tuple[int, Conversation]]:
    """Stream `(line, Conversation)` from a data file; raises DataError at the first bad record."""
    path = Path(path)
    require_readable_file(path)
    fmt = normalize_format(fmt)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == PREFERENCE_FORMAT:
        raise DataError(path, None, "holds preference pairs (preferred / non-preferred outputs): train them with "
                        "--method dpo", code="wrong_data_kind")
    for line, example in iter_examples(path, fmt, column_map):
        if isinstance(example, Issue):
            if example.severity == "error":
                raise DataError(path, line, example.message, example.field, example.code)
            continue
        errors = [i for i in chat_example_issues(example, line) if i.severity == "error"]
        if errors:
            raise DataError(path, line, errors[0].message, errors[0].field, errors[0].code)
        yield line, conversation_from_chat(example)


# --- writing --------------------------------------------------------------------------------------------------


def conversation_to_record(conversation: Conversation, fmt: str = "chat") -> dict[str, Any]:
    """One output record of `fmt`. Raises ValueError when the conversation does not fit the format
    (only single-turn conversations without tools fit prompt-completion and alpaca)."""
    if fmt == "chat":
        return conversation.to_openai()
    if fmt == "sharegpt":
        return _sharegpt_record(conversation)
    system, prompt, completion = _single_turn_parts(conversation, fmt)
    if fmt == "prompt-completion":
        return {"prompt": f"{system}\n\n{prompt}" if system else prompt, "completion": completion}
    if fmt == "alpaca":
        return {"instruction": prompt, "input": "", "output": completion, **({"system": system} if system else {})}
    raise ValueError(f"cannot write format {fmt!r}; expected one of: {', '.join(WRITABLE_FORMATS)}")


def _single_turn_parts(conversation: Conversation, fmt: str) -> tuple[str | None, str, str]:
    roles = [m.role for m in conversation.messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]) or conversation.messages[-1].tool_calls:
        raise ValueError(f"{fmt} holds one user turn and one answer; this example has roles {roles}")
    *head, user, assistant = conversation.messages
    return (head[0].content if head else None), user.content or "", assistant.content or ""


def _sharegpt_record(conversation: Conversation) -> dict[str, Any]:
    turns, system = [], conversation.system
    for m in conversation.messages[1 if system is not None else 0:]:
        if m.tool_calls:
            turns += [{"from": "function_call",
                       "value": json.dumps({"name": c.name, "arguments": json.loads(c.arguments or "{}")})}
                      for c in m.tool_calls]
            continue
        sender = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}[m.role]
        turn: dict[str, Any] = {"from": sender, "value": m.content or ""}
        if m.weight is not None:
            turn["weight"] = m.weight
        turns.append(turn)
    record: dict[str, Any] = {"conversations": turns}
    if system is not None:
        record["system"] = system
    if conversation.tools:
        record["tools"] = json.dumps([t.get("function", t) for t in conversation.tools])
    return record


def write_records(path: Path | str, records: Iterable[dict[str, Any]]) -> int:
    """Write JSONL atomically (temp file beside `path`, then rename), streaming; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            n = _write_lines(f, records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _write_lines(f: TextIO, records: Iterable[dict[str, Any]]) -> int:
    n = 0
    for record in records:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


def write_conversations(path: Path | str, conversations: Iterable[Conversation], fmt: str = "chat") -> int:
    """Write Conversations as JSONL of `fmt`, atomically; returns how many were written."""
    fmt = normalize_format(fmt)
    return write_records(path, (conversation_to_record(c, fmt) for c in conversations))
