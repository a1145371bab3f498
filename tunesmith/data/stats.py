"""Dataset statistics: token counts with the model's own tokenizer and chat template, billing tokens, epochs.

`StatsAccumulator` takes one example at a time and keeps a few integers per example, so validation can
measure a large file while streaming it; `token_stats` is the one-call version over Conversations.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tunesmith.chat_templates import template_input
from tunesmith.conversation import Conversation
from tunesmith.hparams import default_n_epochs

HISTOGRAM_BINS = 10


def count_tokens(conversation: Conversation, tokenizer: Any) -> int:
    """Tokens of the whole example as the model sees it: rendered by its chat template, then tokenized."""
    return count_example_tokens(conversation, tokenizer)[0]


def count_example_tokens(conversation: Conversation, tokenizer: Any) -> tuple[int, int]:
    """(tokens of the rendered example, tokens of its trained assistant turns) from one tokenizer pass:
    the template's text is tokenized with offsets, and tokens inside trained answers are counted."""
    rendered = template_input(tokenizer, conversation)
    messages, tools = rendered.messages, rendered.tools
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer, or a counter that only renders ids (e.g. OpenAI's cookbook count)
        out = tokenizer.apply_chat_template(messages, tools=tools, tokenize=True)
        ids = out["input_ids"] if hasattr(out, "keys") else out
        answers = [m.content for m in conversation.messages if m.trained and m.content]
        trained = sum(len(a) for a in tokenizer(answers, add_special_tokens=False)["input_ids"]) if answers else 0
        return len(ids), trained
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    # The Rust tokenizer directly: the same ids as tokenizer(text, add_special_tokens=False), ~40% faster.
    offsets = np.asarray(backend.encode(text, add_special_tokens=False).offsets)
    if len(offsets) == 0:
        return 0, 0
    starts = offsets[:, 0]
    trained = sum(int(((starts >= lo) & (starts < hi)).sum()) for lo, hi in _trained_spans(conversation, text))
    return len(offsets), trained


def _trained_spans(conversation: Conversation, text: str) -> list[tuple[int, int]]:
    """Character spans of trained assistant content in the rendered text, found in message order."""
    spans, cursor = [], 0
    for m in conversation.messages:
        if not m.content:
            continue
        needle = m.content
        at = text.find(needle, cursor)
        if at < 0:  # templates often strip messages; a template that rewrites one leaves it uncounted
            needle = m.content.strip()
            at = text.find(needle, cursor) if needle else -1
            if at < 0:
                continue
        if m.trained:
            spans.append((at, at + len(needle)))
        cursor = at + len(needle)
    return spans


def summarize(values: Sequence[int] | np.ndarray) -> dict[str, float] | None:
    """min/mean/p50/p95/max/total of a list of counts (None when empty)."""
    if len(values) == 0:
        return None
    a = np.asarray(values, dtype=np.int64)
    return {"min": int(a.min()), "mean": round(float(a.mean()), 1), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": int(a.max()), "total": int(a.sum())}


def histogram(values: Sequence[int] | np.ndarray, bins: int = HISTOGRAM_BINS) -> list[dict[str, int]]:
    """Counts in `bins` equal-width integer ranges: [{"lo", "hi", "count"}] (hi inclusive)."""
    if len(values) == 0:
        return []
    a = np.asarray(values, dtype=np.int64)
    lo, hi = int(a.min()), int(a.max())
    edges = np.unique(np.linspace(lo, hi + 1, min(bins, hi - lo + 1) + 1).astype(np.int64))
    counts, _ = np.histogram(a, bins=edges)
    return [{"lo": int(edges[i]), "hi": int(edges[i + 1]) - 1, "count": int(c)} for i, c in enumerate(counts)]


def format_histogram(bins: list[dict[str, int]], width: int = 40) -> list[str]:
    """Text bars, one line per bin: `   12-  57 | ########        | 31`."""
    if not bins:
        return []
    peak = max(b["count"] for b in bins) or 1
    label = max(len(f"{b['hi']:,}") for b in bins)
    return [f"{b['lo']:>{label},}-{b['hi']:<{label},} | {'#' * round(width * b['count'] / peak):<{width}} | "
            f"{b['count']:,}" for b in bins]


class StatsAccumulator:
    """Per-example counts (a few bytes each) gathered while streaming, summarised at the end."""

    def __init__(self) -> None:
        self.messages = array("I")
        self.chars = array("I")
        self.tokens = array("I")
        self.assistant_tokens = array("I")

    def add(self, conversation: Conversation, tokens: int | None = None, assistant_tokens: int | None = None) -> None:
        self.messages.append(len(conversation.messages))
        self.chars.append(sum(len(m.content or "") for m in conversation.messages))
        if tokens is not None:
            self.tokens.append(tokens)
        if assistant_tokens is not None:
            self.assistant_tokens.append(assistant_tokens)

    def summary(self, context_length: int | None = None, n_epochs: int | None = None) -> dict[str, Any]:
        n = len(self.messages)
        out: dict[str, Any] = {
            "n_examples": n,
            "messages": summarize(self.messages),
            "chars": summarize(self.chars),
            "tokens": summarize(self.tokens),
            "assistant_tokens": summarize(self.assistant_tokens),
            "histogram": histogram(self.tokens),
            "context_length": context_length,
        }
        if n and len(self.tokens) == n:
            out.update(billing(self.tokens, context_length, n_epochs))
        return out


def billing(tokens: Sequence[int] | np.ndarray, context_length: int | None,
            n_epochs: int | None = None) -> dict[str, int]:
    """OpenAI's estimate: tokens per epoch (each example capped at the context limit) × epochs."""
    a = np.asarray(tokens, dtype=np.int64)
    capped = np.minimum(a, context_length) if context_length else a
    epochs = n_epochs or default_n_epochs(len(a))
    return {"n_over_context": int((a > context_length).sum()) if context_length else 0,
            "billing_tokens_per_epoch": int(capped.sum()),
            "default_n_epochs": default_n_epochs(len(a)),
            "n_epochs": epochs,
            "billing_tokens": int(capped.sum()) * epochs}


def token_stats(conversations: Iterable[Conversation], tokenizer: Any, context_length: int | None,
                n_epochs: int | None = None) -> dict[str, Any]:
    """Token statistics of `conversations` with `tokenizer`'s chat template: min/mean/p50/p95/max of tokens
    per example and of trained assistant tokens, a histogram, examples over `context_length`, billing tokens
    and the default epoch count (`n_epochs` overrides the epochs billed)."""
    acc = StatsAccumulator()
    for conversation in conversations:
        acc.add(conversation, *count_example_tokens(conversation, tokenizer))
    return acc.summary(context_length, n_epochs)
