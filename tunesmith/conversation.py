"""The one core type: a Conversation. Every reader produces it; trainer, evaluator and server consume it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as OpenAI carries it

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Message:
    role: str
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    weight: int | None = None  # assistant turns only; 0 = not trained on

    @property
    def trained(self) -> bool:
        return self.role == "assistant" and self.weight != 0

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [t.to_openai() for t in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    @classmethod
    def from_openai(cls, d: dict[str, Any]) -> "Message":
        """Build from an already-validated OpenAI message dict."""
        calls = [
            ToolCall(
                id=str(c.get("id", f"call_{i}")),
                name=c["function"]["name"],
                arguments=c["function"].get("arguments", "{}")
                if isinstance(c["function"].get("arguments", "{}"), str)
                else json.dumps(c["function"]["arguments"]),
            )
            for i, c in enumerate(d.get("tool_calls") or [])
        ]
        return cls(
            role=d["role"],
            content=d.get("content"),
            name=d.get("name"),
            tool_calls=calls,
            tool_call_id=d.get("tool_call_id"),
            weight=d.get("weight"),
        )


@dataclass
class Conversation:
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None  # OpenAI `tools` schema, passed to the chat template as is

    @property
    def system(self) -> str | None:
        first = self.messages[0] if self.messages else None
        return first.content if first is not None and first.role == "system" else None

    def prompt_messages(self) -> list[Message]:
        """Everything before the last assistant turn: what a model is asked to continue."""
        last = self.last_assistant_index()
        return self.messages[:last] if last is not None else list(self.messages)

    def last_assistant_index(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                return i
        return None

    def reference(self) -> str | None:
        """The last assistant message's content: the expected answer for evaluation."""
        last = self.last_assistant_index()
        return self.messages[last].content if last is not None else None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": [m.to_openai() for m in self.messages]}
        if self.tools:
            out["tools"] = self.tools
        return out

    def to_template_messages(self) -> list[dict[str, Any]]:
        """Messages as HF chat templates expect them (no `weight`, tool_calls with parsed arguments)."""
        out = []
        for m in self.messages:
            d: dict[str, Any] = {"role": m.role, "content": m.content or ""}
            if m.tool_calls:
                d["tool_calls"] = [
                    {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": _parse_args(t.arguments)}}
                    for t in m.tool_calls
                ]
            if m.tool_call_id is not None:
                d["tool_call_id"] = m.tool_call_id
            if m.name is not None:
                d["name"] = m.name
            out.append(d)
        return out

    @classmethod
    def from_openai(cls, d: dict[str, Any]) -> "Conversation":
        return cls(messages=[Message.from_openai(m) for m in d["messages"]], tools=d.get("tools"))


def _parse_args(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except (json.JSONDecodeError, TypeError):
        return arguments
