"""Render a Conversation through the model's chat template into token ids and a loss mask.

Assistant-only loss without `{% generation %}` markers (SmolLM2, Llama, Phi-3 templates have none): the
conversation is rendered once in full, and each trained assistant turn's span is found by rendering the
prefix before it (with the generation prompt) and the prefix through it. The span runs from the end of the
generation prompt to the turn's end-of-turn token, inclusive; what a template adds after that token (a
newline, Phi-3's trailing EOS) is not trained. Turns with `weight: 0` and every other role carry no loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.chat_templates import end_of_turn_ids, template_input
from tunesmith.conversation import Conversation


class RenderError(ValueError):
    """A conversation the template cannot render into a trainable example."""


@dataclass
class TokenizedExample:
    ids: list[int]
    trained: list[bool]  # trained[t]: token t is an assistant token the model learns to produce
    truncated: bool = False  # cut at max_length (the stated policy; the trainer warns once per run)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_trained(self) -> int:
        """Tokens carrying loss: a token is predicted from the one before it, so position 0 never is."""
        return sum(self.trained[1:])

    def labels(self) -> list[int]:
        """Hugging Face style labels: the token id where trained, -100 elsewhere (not shifted)."""
        return [i if t else -100 for i, t in zip(self.ids, self.trained)]


def render_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, *, generation_prompt: bool) -> list[int]:
    # Render to text, then tokenise without special tokens: the template already wrote BOS, so letting the
    # tokenizer add another would give the double BOS that ruins fine-tunes.
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def render_example(conversation: Conversation, tokenizer: Any, max_length: int | None = None) -> TokenizedExample:
    """Token ids of the whole conversation, with a mask marking the trained assistant spans."""
    rendered = template_input(tokenizer, conversation)  # tools written as text where the template has none
    messages, tools = rendered.messages, rendered.tools
    try:
        full = render_ids(tokenizer, messages, tools, generation_prompt=False)
    except Exception as e:  # jinja raises its own types (e.g. roles not alternating for Llama 2)
        raise RenderError(f"chat template cannot render this conversation: {e}") from e
    trained = [False] * len(full)
    stops = set(end_of_turn_ids(tokenizer))
    for index, message in enumerate(conversation.messages):
        if not message.trained:
            continue
        at = rendered.index[index]
        start, end = _assistant_span(tokenizer, messages[:at], messages[: at + 1], tools, full)
        end = _cut_after_end_of_turn(full, start, end, stops)
        if end is None:
            raise RenderError(
                f"message {index}: the assistant turn has no end-of-turn token ({tokenizer.eos_token!r} or the "
                "template's); the model would never learn to stop"
            )
        for t in range(start, end):
            trained[t] = True
    if max_length is not None and len(full) > max_length:
        return TokenizedExample(full[:max_length], trained[:max_length], truncated=True)
    return TokenizedExample(full, trained)


def _assistant_span(
    tokenizer: Any, before: list[dict[str, Any]], through: list[dict[str, Any]], tools: Any, full: list[int]
) -> tuple[int, int]:
    prompt = render_ids(tokenizer, before, tools, generation_prompt=True) if before else []
    with_turn = render_ids(tokenizer, through, tools, generation_prompt=False)
    # Token boundaries can differ where the prefix ends (BPE merges); trust only what matches the full render.
    start = _common_prefix_length(prompt, full)
    end = _common_prefix_length(with_turn, full)
    if end <= start:
        raise RenderError("the chat template renders this assistant turn to no tokens")
    return start, end


def _cut_after_end_of_turn(ids: list[int], start: int, end: int, stops: set[int]) -> int | None:
    for t in range(start, end):
        if ids[t] in stops:
            return t + 1
    return None


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def loss_fraction(examples: list[TokenizedExample]) -> float:
    """Share of predicted tokens that carry loss, over a dataset."""
    trained = sum(e.n_trained for e in examples)
    total = sum(max(0, len(e) - 1) for e in examples)
    return trained / total if total else 0.0


def mask_preview(example: TokenizedExample, tokenizer: Any) -> list[tuple[str, bool]]:
    """(token text, trained) pairs: what `train --dry-run` shows so a wrong mask is seen before training."""
    return [(tokenizer.decode([i]), t) for i, t in zip(example.ids, example.trained)]
