"""Prompt-engineering baselines: zero-shot (the data's or a given system prompt) and few-shot examples.

Few-shot examples are earlier question/answer pairs from a pool file (usually the training file), put before
the question as user/assistant turns — the form chat models were tuned on. They are drawn at random (seeded
per question, so reruns match) or as the pool questions nearest to the one asked.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from tunesmith.baselines.rag import TextIndex
from tunesmith.conversation import Conversation, Message


def question_text(conversation: Conversation) -> str:
    """The last user message before the answer: what retrieval and nearest-neighbour search look for."""
    for message in reversed(conversation.prompt_messages()):
        if message.role == "user":
            return message.content or ""
    return ""


def with_system_prompt(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """Replace (or add) the leading system message; None keeps the messages' own."""
    if system_prompt is None:
        return list(messages)
    rest = list(messages[1:]) if messages and messages[0].role == "system" else list(messages)
    return [Message("system", system_prompt)] + rest


def few_shot_messages(examples: Sequence[Conversation]) -> list[Message]:
    """Each example as a user turn (its question) and an assistant turn (its reference answer)."""
    out: list[Message] = []
    for example in examples:
        out += [Message("user", question_text(example)), Message("assistant", example.reference() or "")]
    return out


class FewShotSelector:
    """Picks k examples from a pool for a question, never the question itself (the pool may be the test file)."""

    def __init__(self, pool: Sequence[Conversation], k: int, method: str = "random", seed: int = 0):
        if method not in ("random", "nn"):
            raise ValueError(f"few-shot method must be 'random' or 'nn' (nearest neighbours), got {method!r}")
        self.pool = [c for c in pool if c.reference() is not None and question_text(c)]
        if not self.pool:
            raise ValueError("few-shot pool holds no conversation with a user question and an assistant answer")
        self.k, self.method, self.seed = k, method, seed
        self.index = TextIndex([question_text(c) for c in self.pool]) if method == "nn" else None

    def select(self, conversation: Conversation) -> list[Conversation]:
        question = question_text(conversation)
        candidates = self._ranked(question)
        chosen = [c for c in candidates if question_text(c) != question][: self.k]
        # nearest neighbours go nearest-last, right before the question, where the model attends most
        return chosen[::-1] if self.method == "nn" else chosen

    def _ranked(self, question: str) -> list[Conversation]:
        if self.index is not None:
            # one extra, in case the question itself is in the pool
            hits = self.index.search(question, self.k + 1)
            return [self.pool[i] for i, _ in hits]
        digest = hashlib.sha256(f"{self.seed}:{question}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        return rng.sample(self.pool, min(len(self.pool), self.k + 1))
