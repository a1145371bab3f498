"""Read a model's reply back into OpenAI `tool_calls`: the inverse of how chat templates write them.

A fine-tuned model emits a tool call in the text its chat template rendered into the training data:
- Llama 3.1 (custom JSON tools, tunesmith.chat_templates.LLAMA3): the whole reply is
  `{"name": "get_weather", "parameters": {"city": "Paris"}}` then `<|eot_id|>`. One call per turn.
- ChatML with tools (Qwen2.5/Qwen3, Hermes; hub models served by id): optional text, then one block per call,
  `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>`.
- SmolLM2, Llama 2 and Phi-3, whose templates have no tool branch: tunesmith writes the same Hermes blocks into
  the message text itself (tunesmith.chat_templates.template_input), in training and in prompts alike.

Only names among the request's tools count as calls; anything that does not parse stays plain content, so a
model that half-learned the format answers with text instead of failing the request.

`tool_choice` "required" or a named function is enforced by forcing the start of the reply: the format's call
opening (`forced_opening`) is appended to the prompt after the generation prompt, so the model continues from
inside a call; the opening is put back in front of the generated text before it is parsed.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from tunesmith.chat_templates import PROBE_CALL, renders_tools, tool_probe_text

CallFormat = Literal["hermes", "llama3"]

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
_HERMES_BLOCK = re.compile(re.escape(HERMES_OPEN) + r"(.*?)" + re.escape(HERMES_CLOSE), re.DOTALL)
LLAMA3_PYTHON_TAG = "<|python_tag|>"  # special: decoding with skip_special_tokens drops it, but not every caller does
_ID_CHARS = string.ascii_letters + string.digits
_CALL_FORMATS: dict[str, CallFormat | None] = {}  # chat template text -> how its model writes a call


def tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    """Function names a request offers (`tools[i].function.name`)."""
    names = set()
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(24))


def parse_tool_calls(text: str, tools: list[dict[str, Any]] | None) -> tuple[str | None, list[dict[str, Any]]]:
    """`(content, tool_calls)` from a reply: content is the text around the calls (None when there is none).

    No tools offered, an unknown name or malformed JSON: `(text, [])`, the reply as plain content.
    """
    names = tool_names(tools)
    if not names:
        return text, []
    parsed = _hermes_calls(text, names) or _llama3_call(text, names)
    if parsed is None:
        return text, []
    content, calls = parsed
    return content or None, [_openai_call(name, arguments) for name, arguments in calls]


def call_format(tokenizer: Any) -> CallFormat | None:
    """How a model with this tokenizer's chat template writes a tool call; None for a format not read here.

    Templates without tools get tunesmith's Hermes text; the others are probed by rendering one call.
    """
    template = tokenizer.chat_template or ""
    if template not in _CALL_FORMATS:
        _CALL_FORMATS[template] = _probed_call_format(tokenizer) if renders_tools(tokenizer) else "hermes"
    return _CALL_FORMATS[template]


def _probed_call_format(tokenizer: Any) -> CallFormat | None:
    text = tool_probe_text(tokenizer)
    if re.search(re.escape(HERMES_OPEN) + r'\s*\{"name": "' + PROBE_CALL + '", "arguments": ', text):
        return "hermes"
    if '{"name": "' + PROBE_CALL + '", "parameters": ' in text:
        return "llama3"
    return None


def forced_opening(fmt: CallFormat, name: str | None) -> str:
    """The start of a call a reply is forced to begin with: through the arguments key when `name` is given,
    up to the name when any tool will do (`tool_choice` "required").

    It stops right after the `:` of the arguments key: tokenizers join a space with what follows (` {"`), so a
    forced trailing space would leave the model continuing from a token split it never saw in training.
    """
    opening = HERMES_OPEN + '\n{"name": "' if fmt == "hermes" else '{"name": "'
    if name is None:
        return opening
    return opening + name + ('", "arguments":' if fmt == "hermes" else '", "parameters":')


def ids_with_opening(tokenizer: Any, prompt_ids: list[int], opening: str) -> list[int]:
    """The prompt's ids continued by the forced opening, tokenized as training tokenized the whole text.

    Training encodes a rendered conversation in one piece, so BPE may merge across where the prompt ends
    (`\n\n{` with some vocabularies); encoding the prompt's text and the opening together matches that. Only
    where the prompt's text round-trips to the same ids, else (SentencePiece spacing) the two are encoded apart.
    """
    text = tokenizer.decode(prompt_ids, skip_special_tokens=False)
    if tokenizer.encode(text, add_special_tokens=False) == prompt_ids:
        return tokenizer.encode(text + opening, add_special_tokens=False)
    return prompt_ids + tokenizer.encode(opening, add_special_tokens=False)


def _hermes_calls(text: str, names: set[str]) -> tuple[str, list[tuple[str, dict]]] | None:
    blocks = list(_HERMES_BLOCK.finditer(text))
    if not blocks:
        return None
    calls = [_call_from_json(b.group(1), names, "arguments") for b in blocks]
    if any(c is None for c in calls):
        return None  # all or nothing: a client must never run half of what the model meant
    return _HERMES_BLOCK.sub("", text).strip(), calls  # type: ignore[return-value]


def _llama3_call(text: str, names: set[str]) -> tuple[str, list[tuple[str, dict]]] | None:
    body = text.strip().removeprefix(LLAMA3_PYTHON_TAG)
    call = _call_from_json(body, names, "parameters")
    return ("", [call]) if call is not None else None


def _call_from_json(body: str, names: set[str], arguments_key: str) -> tuple[str, dict] | None:
    """(name, arguments) from `{"name": ..., <arguments_key>: {...}}`, or None when it is not exactly that."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("name") not in names or set(obj) != {"name", arguments_key}:
        return None
    arguments = obj[arguments_key]
    if isinstance(arguments, str):  # Qwen's template writes string arguments as they are: JSON text
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    return (obj["name"], arguments) if isinstance(arguments, dict) else None


def _openai_call(name: str, arguments: dict) -> dict[str, Any]:
    return {"id": new_call_id(), "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


@dataclass
class ToolCallStream:
    """Streams a reply's plain text at once and holds back what could still become a tool call.

    `feed(piece)` returns the text safe to send now as `delta.content`; `finish()` parses the whole reply and
    returns the content not sent yet and the tool calls (empty when the reply was plain text after all).
    Held back: trailing whitespace, a reply starting with `{` (a Llama 3.1 call, decided only once complete),
    and everything from `<tool_call>` (or a trailing prefix of it) on.
    """

    tools: list[dict[str, Any]] | None
    text: str = ""
    sent: int = 0
    _names: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self._names = tool_names(self.tools)

    def feed(self, piece: str) -> str:
        self.text += piece
        ready = self._safe_length() if self._names else len(self.text)
        if ready <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:ready], ready
        return out

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        content, calls = parse_tool_calls(self.text, self.tools)
        if not calls:
            return self.text[self.sent:], []
        # what was sent is a prefix of the text before the first <tool_call>; a Llama 3.1 call sends nothing first
        rest = _HERMES_BLOCK.sub("", self.text)[self.sent:].rstrip() if self.sent else (content or "")
        return (rest if rest.strip() else ""), calls

    def _safe_length(self) -> int:
        lead = self.text.lstrip()
        if not lead or lead.startswith("{") or lead.startswith(LLAMA3_PYTHON_TAG[:len(lead)]):
            return 0
        found = self.text.find(HERMES_OPEN)
        ready = found if found >= 0 else len(self.text) - _partial_suffix(self.text, HERMES_OPEN)
        return len(self.text[:ready].rstrip())  # whitespace before a call is not content: send it with what follows


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper prefix of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0
