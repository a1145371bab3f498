"""Prefix caching: the KV cache of prompt beginnings seen before (a system prompt, a few-shot block), so a new
prompt that starts the same way prefills only its own tail — what vLLM and SGLang call prefix caching.

Entries are batch-1 DynamicCaches, kept per adapter (a fine-tuned model's keys differ from its base's), least
recently used first out once their tokens pass `max_tokens`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from transformers import DynamicCache

# below this a shared prefix costs more to copy into each row than prefilling it again saves
PREFIX_CACHE_MIN_TOKENS = 32


@dataclass
class PrefixHit:
    tokens: int  # how many leading tokens of the prompt the cache covers
    cache: DynamicCache  # batch 1, at least `tokens` long
    key: tuple  # identifies the entry: rows with equal keys and token counts prefill together


class PrefixStore:
    def __init__(self, max_tokens: int = 8192) -> None:
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[str | None, tuple[int, ...]], DynamicCache] = OrderedDict()

    def find(self, adapter: str | None, prompt: list[int]) -> PrefixHit | None:
        """The entry sharing the longest prefix with `prompt` (one token at least left to prefill), if worth it."""
        best: PrefixHit | None = None
        for key, cache in self._entries.items():
            if key[0] != adapter:
                continue
            n = min(shared_len(key[1], prompt), len(prompt) - 1)
            if n >= PREFIX_CACHE_MIN_TOKENS and (best is None or n > best.tokens):
                best = PrefixHit(n, cache, key)
        if best is not None:
            self._entries.move_to_end(best.key)
        return best

    def add(self, adapter: str | None, tokens: list[int], cache: DynamicCache) -> None:
        if len(tokens) < PREFIX_CACHE_MIN_TOKENS or len(tokens) > self.max_tokens:
            return
        self._entries[(adapter, tuple(tokens))] = cache
        self._entries.move_to_end((adapter, tuple(tokens)))
        while sum(len(k[1]) for k in self._entries) > self.max_tokens:
            self._entries.popitem(last=False)

    def covers(self, adapter: str | None, prompt: list[int]) -> bool:
        """Whether an entry already holds all of `prompt` but its last token (nothing new to learn from it)."""
        hit = self.find(adapter, prompt)
        return hit is not None and hit.tokens >= len(prompt) - 1

    def forget(self, adapter: str) -> None:
        for key in [k for k in self._entries if k[0] == adapter]:
            del self._entries[key]


def shared_len(a: tuple[int, ...] | list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)
