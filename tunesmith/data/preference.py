"""Preference data for DPO: OpenAI's format and TRL's `prompt/chosen/rejected`, read into pairs of Conversations.

    {"input": {"messages": [...], "tools": [...]}, "preferred_output": [{"role": "assistant", ...}],
     "non_preferred_output": [{"role": "assistant", ...}]}                                  (OpenAI)
    {"prompt": "...", "chosen": "...", "rejected": "..."}                                    (TRL, plain text)
    {"prompt": [messages], "chosen": [messages], "rejected": [messages]}                     (TRL, conversational)
    {"chosen": [whole conversation], "rejected": [whole conversation]}                       (TRL, implicit prompt)

Each pair becomes two chat examples sharing the prompt; assistant turns inside the prompt get weight 0, so
only the output turns carry log-probabilities, and the chat schema (`chat_example_issues`) checks both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.conversation import Conversation
from tunesmith.data.formats import (PREFERENCE_FORMAT, DataError, conversation_from_chat, iter_examples,
                                    require_readable_file)
from tunesmith.data.schema import ERROR, Issue, RecordError, chat_example_issues, not_an_object_message

_OUTPUT_KEYS = {"chosen": "preferred_output", "rejected": "non_preferred_output"}


@dataclass
class PreferencePair:
    chosen: Conversation  # prompt + preferred output
    rejected: Conversation  # prompt + non-preferred output
    n_prompt: int  # messages of the shared prompt


@dataclass
class PairExamples:
    """One record as two chat examples (OpenAI's chat shape), before the schema check."""
    chosen: dict[str, Any]
    rejected: dict[str, Any]
    n_prompt: int
    keys: tuple[str, str, str]  # the record's own names for prompt, chosen and rejected (for error fields)


def pair_examples(record: Any) -> PairExamples:
    """The two chat examples a preference record stands for; RecordError when its shape is wrong."""
    if not isinstance(record, dict):
        raise RecordError("data_type", not_an_object_message(record))
    if "preferred_output" in record or "non_preferred_output" in record:
        source = record.get("input")
        if not isinstance(source, dict) or not isinstance(source.get("messages"), list) or not source["messages"]:
            raise RecordError("missing_preference_input", "`input.messages` must be a non-empty list of messages",
                              field="input.messages")
        prompt, tools = source["messages"], source.get("tools")
        chosen = _outputs(record, "preferred_output")
        rejected = _outputs(record, "non_preferred_output")
        keys = ("input.messages", "preferred_output", "non_preferred_output")
    else:
        prompt, chosen, rejected = _trl_parts(record)
        tools, keys = record.get("tools"), ("prompt", "chosen", "rejected")
    prompt = [{**m, "weight": 0} if isinstance(m, dict) and m.get("role") == "assistant" else m for m in prompt]
    extra = {"tools": tools} if tools is not None else {}
    return PairExamples({"messages": prompt + chosen, **extra}, {"messages": prompt + rejected, **extra},
                        len(prompt), keys)


def _outputs(record: dict[str, Any], key: str) -> list[Any]:
    value = record.get(key)
    if value is None or value == [] or value == "":
        raise RecordError(f"missing_{key}", f"`{key}` is missing or empty", field=key)
    if isinstance(value, str):  # a plain answer: the assistant turn it stands for
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError("data_type", f"`{key}` must be a list of assistant messages", field=key)
    for j, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            role = message.get("role") if isinstance(message, dict) else None
            raise RecordError("invalid_preference_output", f"`{key}[{j}]` must be an assistant message, got "
                              f"role {role!r}", field=f"{key}[{j}].role")
    return value


def _trl_parts(record: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """TRL's prompt / chosen / rejected, plain strings or message lists; no prompt: their common prefix."""
    chosen_raw, rejected_raw = record.get("chosen"), record.get("rejected")
    prompt = record.get("prompt")
    if prompt is None and isinstance(chosen_raw, list) and isinstance(rejected_raw, list):
        n = 0
        while n < min(len(chosen_raw), len(rejected_raw)) - 1 and chosen_raw[n] == rejected_raw[n]:
            n += 1
        prompt, chosen_raw, rejected_raw = chosen_raw[:n], chosen_raw[n:], rejected_raw[n:]
    if isinstance(prompt, str) and prompt:
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise RecordError("missing_preference_input", "`prompt` must be a non-empty string or list of messages",
                          field="prompt")
    return prompt, _outputs({"chosen": chosen_raw}, "chosen"), _outputs({"rejected": rejected_raw}, "rejected")


def preference_issues(record: Any, line: int | None) -> tuple[list[Issue], PreferencePair | None]:
    """Every problem of one preference record, and the pair when it has no error."""
    try:
        examples = pair_examples(record)
    except RecordError as e:
        return [Issue(line, e.code, e.message, e.index, e.field)], None
    issues = _renamed(chat_example_issues(examples.chosen, line), examples, 1)
    seen = {(i.code, i.field) for i in issues}
    issues += [i for i in _renamed(chat_example_issues(examples.rejected, line), examples, 2)
               if (i.code, i.field) not in seen]  # a problem in the shared prompt is said once
    if any(i.severity == ERROR for i in issues):
        return issues, None
    pair = PreferencePair(conversation_from_chat(examples.chosen), conversation_from_chat(examples.rejected),
                          examples.n_prompt)
    if pair.chosen.messages[pair.n_prompt:] == pair.rejected.messages[pair.n_prompt:]:
        issues.append(Issue(line, "identical_preference_outputs", "the preferred and non-preferred outputs are "
                            "the same: this pair teaches nothing", field=examples.keys[1]))
    return issues, pair


_MESSAGE_FIELD = re.compile(r"^messages\[(\d+)\]")


def _renamed(issues: list[Issue], examples: PairExamples, output: int) -> list[Issue]:
    """Issue fields in the record's own names: `messages[4]` of the chosen example is `preferred_output[1]`."""
    for issue in issues:
        m = _MESSAGE_FIELD.match(issue.field or "")
        if m:
            i = int(m.group(1))
            name, at = ((examples.keys[0], i) if i < examples.n_prompt
                        else (examples.keys[output], i - examples.n_prompt))
            issue.field = f"{name}[{at}]" + issue.field[m.end():]
        elif issue.field == "messages":
            issue.field = examples.keys[0]
    return issues


def iter_numbered_pairs(path: Path | str) -> Iterator[tuple[int, PreferencePair]]:
    """Stream `(line, PreferencePair)` from a preference file; raises DataError at the first bad record."""
    require_readable_file(path)
    for line, record in iter_examples(path, PREFERENCE_FORMAT):
        if isinstance(record, Issue):
            if record.severity == ERROR:
                raise DataError(path, line, record.message, record.field, record.code)
            continue
        issues, pair = preference_issues(record, line)
        errors = [i for i in issues if i.severity == ERROR]
        if errors:
            raise DataError(path, line, errors[0].message, errors[0].field, errors[0].code)
        yield line, pair


def read_pairs(path: Path | str) -> list[PreferencePair]:
    """Every pair of a preference file (`data.validate.validate_file` lists every problem instead)."""
    return [pair for _, pair in iter_numbered_pairs(path)]
