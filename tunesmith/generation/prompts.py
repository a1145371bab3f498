"""What the engine is fed: a prompt (a Conversation, OpenAI message dicts or token ids) as the model's token ids.

A Conversation that ends with an assistant turn (a test item) is continued from before that turn, so its
reference answer is never shown; message lists are continued as they are. Rendering goes through
`chat_templates.template_input`, the same function training uses, so the model reads what it was trained on.
"""

from __future__ import annotations

from typing import Any, Sequence

from tunesmith.chat_templates import template_input
from tunesmith.conversation import Conversation, Message

Prompt = Conversation | Sequence[Message] | Sequence[dict[str, Any]] | list[int]  # token ids: used as they are


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of the chat-templated prompt, ending with the assistant generation prompt."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return list(prompt)  # already encoded: the server's prompt with a forced start of the reply
    if isinstance(prompt, Conversation):
        ends_with_answer = bool(prompt.messages) and prompt.messages[-1].role == "assistant"
        messages = prompt.prompt_messages() if ends_with_answer else prompt.messages
        tools = prompt.tools
    else:
        messages = [m if isinstance(m, Message) else Message.from_openai(m) for m in prompt]
        tools = None
    rendered = template_input(tokenizer, Conversation(list(messages), tools))  # as the model was trained
    ids = tokenizer.apply_chat_template(rendered.messages, tools=rendered.tools, add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    if hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding even when asked for ids
        ids = ids["input_ids"]
    return list(ids)


def common_prefix_len(encoded: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt shares (a single prompt shares all of its own)."""
    if not encoded:
        return 0
    first, n = encoded[0], min(len(ids) for ids in encoded)
    for ids in encoded[1:]:
        n = next((i for i in range(n) if ids[i] != first[i]), n)
    return n


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a turn: the tokenizer's EOS plus whatever the generation config lists."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def context_length(model: Any) -> int | None:
    """The longest sequence the model was built for (prompt and reply together), when its config says."""
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None
