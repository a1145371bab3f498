"""The OpenAI chat fine-tuning example schema: every problem code, and the checks on one example.

Codes reuse the OpenAI cookbook validator's names where it has one and add our own for what it misses.
Whether an issue is an error (the file would fail a fine-tuning job, or train something wrong) or a
warning (worth a look) follows from its code, so the two can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"

CODES: dict[str, tuple[str, str]] = {
    # OpenAI's codes (cookbook "Chat_finetuning_data_prep").
    "data_type": (ERROR, "a line (or a field) holds the wrong JSON type"),
    "missing_messages_list": (ERROR, "no `messages` list, or an empty one"),
    "message_missing_key": (ERROR, "a message lacks `role`, `content` or (tool role) `tool_call_id`"),
    "message_unrecognized_key": (ERROR, "a message key outside role, content, name, tool_calls, tool_call_id, "
                                        "function_call, weight"),
    "unrecognized_role": (ERROR, "a role outside system, user, assistant, tool, function"),
    "missing_content": (ERROR, "empty or non-text content (assistant tool calls may have none)"),
    "example_missing_assistant_message": (ERROR, "nothing to train on: no assistant message"),
    # Ours: reading the file.
    "invalid_json": (ERROR, "the line is not valid JSON"),
    "not_utf8": (ERROR, "the line is not valid UTF-8"),
    "invalid_csv": (ERROR, "a CSV row that cannot be parsed (e.g. a quote that is never closed)"),
    "invalid_unicode": (ERROR, "a string holds a lone surrogate escape (e.g. \"\\ud800\"), which is not a character"),
    "binary_file": (ERROR, "the file is compressed or binary (gzip, zip, an Excel workbook), not text"),
    "not_jsonl": (ERROR, "the file is pretty-printed JSON (objects over several lines), not one object per line"),
    "data_after_array": (ERROR, "the file holds more after its JSON array ends (the rest is not read)"),
    "empty_file": (ERROR, "the file holds no examples"),
    "missing_field": (ERROR, "a field the input format requires is missing (prompt, completion, instruction, ...)"),
    "unsupported_content": (ERROR, "content parts other than text (images, audio) cannot train a local model"),
    # Ours: structure OpenAI accepts but the cookbook does not check.
    "invalid_weight": (ERROR, "`weight` must be 0 or 1, and only on assistant messages"),
    "invalid_tool_calls": (ERROR, "`tool_calls` is not a list of {id, type: function, function: {name, "
                                  "arguments: JSON text}}"),
    "invalid_tools": (ERROR, "`tools` is not a list of {type: function, function: {name, ...}}"),
    "tool_message_without_call": (ERROR, "a tool message whose tool_call_id matches no earlier tool call"),
    # Ours: preference pairs (DPO; tunesmith.data.preference).
    "missing_preference_input": (ERROR, "a preference pair without its prompt (`input.messages`, or `prompt`)"),
    "missing_preferred_output": (ERROR, "a preference pair without `preferred_output` (or `chosen`)"),
    "missing_non_preferred_output": (ERROR, "a preference pair without `non_preferred_output` (or `rejected`)"),
    "missing_chosen": (ERROR, "a preference pair without `chosen`"),
    "missing_rejected": (ERROR, "a preference pair without `rejected`"),
    "invalid_preference_output": (ERROR, "a preferred or non-preferred output holds a message that is not the "
                                         "assistant's"),
    "wrong_data_kind": (ERROR, "preference pairs given to supervised training, or chat examples to DPO"),
    # Ours: across the dataset.
    "too_few_examples": (ERROR, "fewer than 10 examples (OpenAI's minimum)"),
    "too_many_tokens": (ERROR, "an example longer than the model's context limit"),
    "duplicate_example": (ERROR, "the same example appears earlier in the file"),
    "train_validation_overlap": (ERROR, "a validation example also appears in the training file"),
    "chat_template_error": (ERROR, "the model's chat template cannot render the example"),
    # Warnings.
    "blank_line": (WARNING, "an empty line (skipped)"),
    "csv_delimiter": (WARNING, "the CSV is separated by semicolons or tabs, not commas (read as such)"),
    "example_unrecognized_key": (WARNING, "a top-level key outside messages, tools, parallel_tool_calls, functions"),
    "missing_system_message": (WARNING, "examples without a system message"),
    "missing_user_message": (WARNING, "an example without a user message"),
    "last_message_not_assistant": (WARNING, "turns after the last assistant message are never trained on"),
    "no_trained_messages": (WARNING, "every assistant message has weight 0: the example trains nothing"),
    "short_answer": (WARNING, "a very short assistant answer"),
    "long_answer": (WARNING, "a very long assistant answer"),
    "personal_data": (WARNING, "an e-mail address or phone number inside an example"),
    "possible_secret": (WARNING, "something that looks like an API key or private key inside an example"),
    "near_duplicate": (WARNING, "an example nearly identical to an earlier one"),
    "conflicting_answers": (WARNING, "the same prompt as an earlier example with a different answer"),
    "few_examples": (WARNING, "fewer than 50 examples: OpenAI sees clear gains from 50-100"),
    "identical_preference_outputs": (WARNING, "the preferred and non-preferred outputs are the same"),
    "tokens_not_counted": (WARNING, "no local tokenizer for the model: token limits were not checked"),
}

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight")
EXAMPLE_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
# Optional message fields OpenAI's schema lets be null: the SDK's `message.model_dump()` writes them all.
# A null one means "absent"; `refusal`, `audio` and `annotations` are only accepted when null (or empty).
NULLABLE_KEYS = ("name", "tool_calls", "tool_call_id", "function_call", "refusal", "audio", "annotations")


@dataclass
class Issue:
    line: int | None  # 1-based line (row, for CSV) in `file`; None for whole-file issues
    code: str
    message: str
    index: int | None = None  # message index inside the example
    field: str | None = None  # e.g. "messages[2].content"
    column: int | None = None  # 1-based column, for invalid_json / not_utf8
    file: str | None = None  # set when the issue is in the validation file

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def to_dict(self) -> dict[str, Any]:
        out = {"line": self.line, "code": self.code, "message": self.message}
        out.update({k: v for k, v in asdict(self).items() if v is not None and k not in out})
        return out


class RecordError(Exception):
    """One problem that stops a record from becoming a chat example (raised by format converters)."""

    def __init__(self, code: str, message: str, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.code, self.message, self.field, self.index = code, message, field, index


def chat_example_issues(example: Any, line: int | None) -> list[Issue]:
    """Every structural problem of one OpenAI chat example (errors and warnings, in message order)."""
    if not isinstance(example, dict):
        return [Issue(line, "data_type", not_an_object_message(example))]
    issues: list[Issue] = []
    for key in example:
        if key not in EXAMPLE_KEYS:
            issues.append(Issue(line, "example_unrecognized_key", f"unexpected key {key!r} (ignored)", field=key))
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        what = "missing" if messages is None else "empty" if messages == [] else f"{_json_type(messages)}, not a list"
        return issues + [Issue(line, "missing_messages_list", f"`messages` is {what}", field="messages")]
    issues += _tools_issues(example.get("tools"), line)
    issues += _legacy_example_issues(example, line)
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        issues += _message_issues(message, i, line, call_ids)
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        issues.append(Issue(line, "example_missing_assistant_message", "the example has no assistant message"))
    elif not any(i.severity == ERROR for i in issues):  # the shape warnings only make sense on a sound example
        if "user" not in roles:
            issues.append(Issue(line, "missing_user_message", "the example has no user message"))
        if roles[-1] != "assistant":
            issues.append(Issue(line, "last_message_not_assistant",
                                f"the last message is {roles[-1]!r}: messages after the last assistant turn "
                                "are never trained on", index=len(messages) - 1))
        weights = [m.get("weight") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if weights and all(w == 0 for w in weights):
            issues.append(Issue(line, "no_trained_messages", "every assistant message has weight 0"))
    return issues


def _message_issues(message: Any, i: int, line: int | None, call_ids: set[str]) -> list[Issue]:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        return [Issue(line, "data_type", f"message {i} is {_json_type(message)}, not an object", i, where)]
    message = present_fields(message)
    issues = [
        Issue(line, "message_unrecognized_key", f"message {i} has unexpected key {key!r}", i, f"{where}.{key}")
        for key in message
        if key not in MESSAGE_KEYS
    ]
    role = message.get("role")
    if "role" not in message:
        issues.append(Issue(line, "message_missing_key", f"message {i} has no `role`", i, f"{where}.role"))
    elif role not in ROLES:
        issues.append(Issue(line, "unrecognized_role", f"message {i} has role {role!r}; expected one of "
                            + ", ".join(ROLES), i, f"{where}.role"))
    issues += _content_issues(message, i, line)
    if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)
                                or isinstance(message["weight"], bool)):
        why = "only assistant messages carry a weight" if role != "assistant" else "weight must be 0 or 1"
        issues.append(Issue(line, "invalid_weight", f"message {i}: {why}, got {message['weight']!r}", i,
                            f"{where}.weight"))
    if "name" in message and not isinstance(message["name"], str):
        issues.append(Issue(line, "data_type", f"message {i}: `name` must be text, got {_json_type(message['name'])}",
                            i, f"{where}.name"))
    if "tool_calls" in message:
        issues += _tool_calls_issues(message["tool_calls"], role, i, line, call_ids)
    if "function_call" in message:
        problem = _function_call_problem(message["function_call"])
        if problem:
            issues.append(Issue(line, "invalid_tool_calls", f"message {i}: {problem}", i, f"{where}.function_call"))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if call_id is None:
            issues.append(Issue(line, "message_missing_key", f"tool message {i} has no `tool_call_id`", i,
                                f"{where}.tool_call_id"))
        elif not isinstance(call_id, str):  # checked before the set lookup: a list or object is unhashable
            issues.append(Issue(line, "data_type", f"tool message {i}: `tool_call_id` must be text, got "
                                f"{_json_type(call_id)}", i, f"{where}.tool_call_id"))
        elif call_id not in call_ids:
            issues.append(Issue(line, "tool_message_without_call",
                                f"tool message {i} answers tool_call_id {call_id!r}, which no earlier assistant "
                                "message called", i, f"{where}.tool_call_id"))
    return issues


def present_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The message without the optional fields that are null (or, for `annotations`, empty)."""
    return {k: v for k, v in message.items()
            if not (k in NULLABLE_KEYS and (v is None or (k == "annotations" and v == [])))}


def _function_call_problem(call: Any) -> str | None:
    """The legacy `function_call: {name, arguments}` of an assistant message."""
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
        return "function_call must be {\"name\": text, \"arguments\": JSON text}"
    if not isinstance(call.get("arguments", "{}"), (str, dict)):
        return f"function_call.arguments must be JSON text, got {_json_type(call['arguments'])}"
    return None


def _legacy_example_issues(example: dict[str, Any], line: int | None) -> list[Issue]:
    """`parallel_tool_calls` and the legacy `functions` list (read as tools)."""
    issues = []
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        issues.append(Issue(line, "data_type", "`parallel_tool_calls` must be true or false",
                            field="parallel_tool_calls"))
    functions = example.get("functions")
    if functions is not None and (not isinstance(functions, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) for f in functions)):
        issues.append(Issue(line, "invalid_tools", "`functions` must be a list of {name, parameters, ...}",
                            field="functions"))
    return issues


def _content_issues(message: dict[str, Any], i: int, line: int | None) -> list[Issue]:
    where = f"messages[{i}].content"
    if "content" not in message:
        if message.get("role") == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return []
        return [Issue(line, "message_missing_key", f"message {i} has no `content`", i, where)]
    content = message["content"]
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else _json_type(part)
                return [Issue(line, "unsupported_content", f"message {i} has a {kind!r} content part; only text "
                              "parts can train a local model", i, where)]
        content = "".join(part["text"] for part in content)
    if isinstance(content, str) and content.strip():
        return []
    if content is None and message.get("role") == "assistant" and (message.get("tool_calls")
                                                                   or message.get("function_call")):
        return []
    what = "empty" if isinstance(content, str) else f"{_json_type(content)}, not text"
    return [Issue(line, "missing_content", f"message {i} content is {what}", i, where)]


def _tool_calls_issues(calls: Any, role: Any, i: int, line: int | None, call_ids: set[str]) -> list[Issue]:
    where = f"messages[{i}].tool_calls"
    if role != "assistant":
        return [Issue(line, "invalid_tool_calls", f"message {i}: only assistant messages make tool calls", i, where)]
    if not isinstance(calls, list) or not calls:
        return [Issue(line, "invalid_tool_calls", f"message {i}: tool_calls must be a non-empty list", i, where)]
    issues = []
    for k, call in enumerate(calls):
        problem = _tool_call_problem(call)
        if problem:
            issues.append(Issue(line, "invalid_tool_calls", f"message {i} tool call {k}: {problem}", i,
                                f"{where}[{k}]"))
        else:
            call_ids.add(call["id"])
    return issues


def _tool_call_problem(call: Any) -> str | None:
    if not isinstance(call, dict):
        return f"expected an object, got {_json_type(call)}"
    if not isinstance(call.get("id"), str) or not call["id"]:
        return "missing `id`"
    if call.get("type", "function") != "function":
        return f"type {call.get('type')!r} is not 'function'"
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        return "missing `function.name`"
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        return "`function.arguments` must be JSON text (a string)"
    try:
        json.loads(arguments)
    except json.JSONDecodeError as e:
        return f"`function.arguments` is not valid JSON ({e.msg})"
    return None


def _tools_issues(tools: Any, line: int | None) -> list[Issue]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        return [Issue(line, "invalid_tools", f"`tools` is {_json_type(tools)}, not a list", field="tools")]
    for k, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return [Issue(line, "invalid_tools", f"tool {k} is not {{type: function, function: {{name, ...}}}}",
                          field=f"tools[{k}]")]
    return []


def not_an_object_message(record: Any) -> str:
    """Why a record that is not a JSON object is refused, and what to write instead."""
    if isinstance(record, list) and record and all(isinstance(m, dict) and "role" in m for m in record):
        return ("a bare list of messages: each line must be one object, {\"messages\": [...]}, "
                "as OpenAI's chat format has it")
    if isinstance(record, list):
        return ("a JSON array on one line: in JSONL each line holds one example object (a file that is one "
                "JSON array must hold nothing after it)")
    return f"expected a JSON object, got {_json_type(record)}"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
