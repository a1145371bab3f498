"""One request's life in the engine: its row state while it runs, and the handle its caller holds."""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from tunesmith.generation.sampling import SamplingParams, TokenLogprob, row_generator
from tunesmith.generation.text import RowText


class GenerationError(RuntimeError):
    """A request that failed inside the engine (its own row only: the others carry on)."""


class ContextLengthError(ValueError):
    """A prompt that does not fit the model's context."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int  # every generated token, the EOS included: what OpenAI bills
    finish_reason: str  # "stop" (EOS or a stop string) | "length" (hit max_tokens)
    latency_s: float  # from submission to the last token: how long its caller waited
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None


@dataclass(eq=False)  # compared by identity: rows are removed one by one
class Row:
    prompt: list[int]
    params: SamplingParams
    adapter: str | None  # PEFT adapter name over the engine's base model; None: the base model
    text: RowText
    future: Future = field(default_factory=Future)
    pieces: queue.Queue | None = None  # a streaming row's text pieces; None ends, an exception fails
    generator: torch.Generator | None = None
    next_token: int = -1  # what the next decode step feeds
    logprobs: list[TokenLogprob] | None = None
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.generator = row_generator(self.params)
        if self.params.logprobs is not None:
            self.logprobs = []

    @property
    def finished(self) -> bool:
        return self.text.finish_reason is not None or self.cancelled or self.future.done()

    def take(self, token: int, logprob: TokenLogprob | None) -> None:
        """The row's next token: into its text, its stream, and the next step's input."""
        self.text.push(token)
        self.next_token = token
        if logprob is not None and self.logprobs is not None:
            self.logprobs.append(logprob)
        if self.text.finish_reason is None and self.text.generated >= self.params.max_tokens:
            self.text.finish_reason = "length"
        if self.pieces is not None and (piece := self.text.ready()):
            self.pieces.put(piece)
        if self.text.finish_reason is not None:
            self._complete()

    def fail(self, error: BaseException) -> None:
        if self.future.done():
            return
        self.future.set_exception(error)
        if self.pieces is not None:
            self.pieces.put(error)

    def _complete(self) -> None:
        generation = Generation(self.text.final_text(), len(self.prompt), self.text.generated,
                                self.text.finish_reason or "length", time.perf_counter() - self.submitted,
                                list(self.text.tokens), self.logprobs)
        if not self.future.done():
            self.future.set_result(generation)
        if self.pieces is not None:
            self.pieces.put(None)


class Completion:
    """The caller's side of one request: wait for its Generation, or read its text as it streams."""

    def __init__(self, row: Row, wake: Any) -> None:
        self._row, self._wake = row, wake

    def result(self, timeout: float | None = None) -> Generation:
        """The finished generation; a request that failed raises its error here."""
        return self._row.future.result(timeout)

    def done(self) -> bool:
        return self._row.future.done()

    def stream(self) -> Iterator[str]:
        """The reply's text, piece by piece. Closing the iterator early (the client left) frees the row at once."""
        assert self._row.pieces is not None, "submit(..., stream=True) to stream"
        try:
            while (piece := self._row.pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            if not self._row.future.done():
                self.cancel()

    def cancel(self) -> None:
        self._row.cancelled = True
        self._wake()
