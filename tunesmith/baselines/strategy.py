"""A prompt strategy, parsed from its spec string, turns a test conversation into the messages sent to a model.

    zero-shot                 the conversation's own system prompt (or --system-prompt)
    few-shot:K[:random|nn]    K examples from the pool file, random (default) or nearest neighbours
    rag:DIR[:K]               the top K (default 3) chunks of the documents in DIR, added to the system prompt
    rag:docs+few-shot:3       parts combine with '+'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tunesmith.baselines.prompting import FewShotSelector, few_shot_messages, question_text, with_system_prompt
from tunesmith.baselines.rag import Chunk, Retriever
from tunesmith.conversation import Conversation, Message

DEFAULT_RAG_K = 3


class StrategyError(ValueError):
    """A strategy spec that cannot be built, saying which part and why."""


@dataclass
class Strategy:
    spec: str
    system_prompt: str | None = None
    few_shot: FewShotSelector | None = None
    retriever: Retriever | None = None
    rag_k: int = DEFAULT_RAG_K
    notes: list[str] = field(default_factory=list)  # e.g. "rag: BM25 fallback (embedding model unavailable)"

    def build_messages(self, conversation: Conversation) -> list[Message]:
        """System prompt (+ retrieved context), then few-shot turns, then the conversation up to its answer."""
        messages = with_system_prompt(conversation.prompt_messages(), self.system_prompt)
        system = messages[0].content if messages and messages[0].role == "system" else None
        turns = messages[1:] if system is not None else messages
        if self.retriever is not None:
            chunks = self.retriever.retrieve(question_text(conversation), self.rag_k)
            system = context_system_prompt(system, chunks)
        examples = few_shot_messages(self.few_shot.select(conversation)) if self.few_shot else []
        return ([Message("system", system)] if system is not None else []) + examples + turns


def context_system_prompt(system: str | None, chunks: Sequence[Chunk]) -> str:
    context = "\n\n".join(f"[{i}] ({c.source})\n{c.text}" for i, c in enumerate(chunks, 1))
    lead = f"{system}\n\n" if system else ""
    return f"{lead}Use this reference material when it helps:\n\n{context}"


def parse_strategy(
    spec: str = "zero-shot",
    *,
    system_prompt: str | None = None,
    pool: Sequence[Conversation] | None = None,
    seed: int = 0,
) -> Strategy:
    strategy = Strategy(spec, system_prompt=system_prompt)
    for part in (p.strip() for p in spec.split("+")):
        kind, _, arg = part.partition(":")
        if kind == "zero-shot" and not arg:
            continue
        if kind == "few-shot":
            strategy.few_shot = _few_shot(part, arg, pool, seed)
        elif kind == "rag":
            strategy.retriever, strategy.rag_k = _retriever(part, arg)
            if strategy.retriever.index.fallback_reason:
                strategy.notes.append(f"rag: BM25 fallback ({strategy.retriever.index.fallback_reason})")
        else:
            raise StrategyError(f"unknown strategy part {part!r}; use zero-shot, few-shot:K[:nn], rag:DIR[:K]")
    return strategy


def _few_shot(part: str, arg: str, pool: Sequence[Conversation] | None, seed: int) -> FewShotSelector:
    k_text, _, method = arg.partition(":")
    if not k_text.isdigit() or int(k_text) < 1:
        raise StrategyError(f"{part!r}: expected few-shot:K with K ≥ 1, e.g. few-shot:3 or few-shot:3:nn")
    if not pool:
        raise StrategyError(f"{part!r} needs examples to draw from: pass --pool FILE (e.g. the training file)")
    try:
        return FewShotSelector(pool, int(k_text), method or "random", seed)
    except ValueError as e:
        raise StrategyError(f"{part!r}: {e}") from e


def _retriever(part: str, arg: str) -> tuple[Retriever, int]:
    folder, k = arg, DEFAULT_RAG_K
    head, _, tail = arg.rpartition(":")
    if head and tail.isdigit():
        folder, k = head, int(tail)
    if not folder:
        raise StrategyError(f"{part!r}: expected rag:DOCS_DIR, e.g. rag:docs/ or rag:docs/:5")
    try:
        return Retriever(Path(folder)), k
    except FileNotFoundError as e:
        raise StrategyError(str(e)) from e
