"""Checks on what a request holds that pydantic's types cannot say: chat messages' shapes, model names, and a
prompt too long to be worth tokenising. Each failure is a 400 (404 for a model) naming the field in `param`,
as OpenAI writes it (`messages.[0].content`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.server.errors import OpenAIError

ROLES = ("system", "developer", "user", "assistant", "tool")
# `ft:<base>:<suffix>:<job id part>`, optionally `:ckpt-step-<N>`: nothing else can name a fine-tuned model
_FINE_TUNED = re.compile(r"ft:([A-Za-z0-9._-]+):([A-Za-z0-9._-]*):([A-Za-z0-9]+)(?::ckpt-step-(0|[1-9][0-9]{0,8}))?")
# No tokenizer served here writes a token of more than this many characters; a prompt longer than
# context * this is refused without being tokenised (tokenising 20 MB of text costs gigabytes and minutes).
MAX_CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class FineTunedName:
    job_id: str
    step: int | None  # a checkpoint's step; None for the final model


def parse_fine_tuned_name(name: str) -> FineTunedName | None:
    """The job (and checkpoint step) a fine-tuned model name stands for; None for any other string."""
    m = _FINE_TUNED.fullmatch(name)
    if m is None:
        return None
    return FineTunedName("ftjob-" + m.group(3), int(m.group(4)) if m.group(4) is not None else None)


def inside(root: Path, path: Path) -> Path | None:
    """`path` resolved, if it stays under `root` (no `..` or symlink leads out); else None."""
    resolved, base = path.resolve(), root.resolve()
    return resolved if resolved.is_relative_to(base) else None


def _bad(message: str, param: str) -> OpenAIError:
    return OpenAIError(400, message, param=param, code="invalid_value")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def check_messages(messages: list[Any]) -> None:
    """Every message is an object with a known role, string or text-part content, well-formed tool_calls."""
    for i, message in enumerate(messages):
        where = f"messages.[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"Invalid type for '{where}': expected an object, but got {_type_name(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role must be system, developer, user, assistant or tool; got {role!r}",
                       f"{where}.role")
        _check_content(message.get("content"), f"{where}.content")
        for key in ("name", "tool_call_id"):
            if message.get(key) is not None and not isinstance(message[key], str):
                raise _bad(f"Invalid type for '{where}.{key}': expected a string, but got "
                           f"{_type_name(message[key])}.", f"{where}.{key}")
        if message.get("tool_calls") is not None:
            _check_tool_calls(message["tool_calls"], f"{where}.tool_calls")


def _check_content(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{where}': expected a string or an array of text parts, but got "
                   f"{_type_name(content)}.", where)
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise _bad(f"{where}.[{j}]: only text parts ({{'type': 'text', 'text': ...}}) are supported here",
                       f"{where}.[{j}]")
        if not isinstance(part.get("text"), str):
            raise _bad(f"Invalid type for '{where}.[{j}].text': expected a string, but got "
                       f"{_type_name(part.get('text'))}.", f"{where}.[{j}].text")


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise _bad(f"Invalid type for '{where}': expected an array, but got {_type_name(calls)}.", where)
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _bad(f"{where}.[{j}] needs a 'function' object with 'name' and 'arguments'",
                       f"{where}.[{j}].function")
        for key in ("name", "arguments"):
            if not isinstance(function.get(key), str):
                raise _bad(f"Invalid type for '{where}.[{j}].function.{key}': expected a string, but got "
                           f"{_type_name(function.get(key))}.", f"{where}.[{j}].function.{key}")


def check_prompt_size(messages: list[dict[str, Any]], tools: list[Any] | None, context: int | None) -> None:
    """Refuse, before tokenising, a prompt that cannot fit `context` tokens: more messages than tokens, or more
    characters than the longest tokens could cover."""
    if context is None:
        return
    if len(messages) > context:
        raise OpenAIError(400, f"This model's maximum context length is {context} tokens; the request has "
                               f"{len(messages)} messages.", param="messages", code="context_length_exceeded")
    chars = sum(_text_length(m.get("content")) for m in messages) + len(repr(tools or ""))
    if chars > context * MAX_CHARS_PER_TOKEN:
        raise OpenAIError(400, f"This model's maximum context length is {context} tokens; the messages hold "
                               f"{chars:,} characters, far more than fits.", param="messages",
                          code="context_length_exceeded")


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return 0
