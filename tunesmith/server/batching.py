"""Continuous-ish batching for the server: concurrent chat requests share one `generate` call.

A request is queued with its prompt ids and sampling settings; one worker thread per `ModelPool` takes the
oldest request, waits a short window (`window_s`) for others, then, holding the pool, takes every queued
request that can share a batch with it (same base model, same tokenizer padding and EOS, same sampling
settings: greedy with greedy, or the same temperature and top_p) up to `max_batch`. Requests that arrive while
a batch runs are queued and go together into the next one.

Rows for different fine-tuned models over the same base run in the same batch through PEFT's mixed-adapter
inference (`adapter_names=[...]`, "__base__" for the base model's rows); where PEFT cannot mix (DoRA, non-LoRA
adapters, more adapters than the pool keeps loaded) the batch is split by adapter (`ModelPool.adapter_groups`).

Inside a batch every row stops at its own max_tokens, stop strings and EOS (`_RowLimits`); finished rows are
padded until the last one ends, and each row is cut and counted exactly as `predict.generate` does alone.
Seeded requests and n > 1 do not come here: they keep their own generator state, as before (chat_api.py).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from tunesmith.evaluate.predict import Generation, _finish, eos_token_ids, padded_batch
from tunesmith.server.inference import ModelTarget, SamplingParams, StreamResult, _first_stop, _held_back

DEFAULT_MAX_BATCH = 16
DEFAULT_WINDOW_S = 0.01  # how long a lone request waits for company: small next to one decoding step


@dataclass(eq=False)  # compared by identity: queued requests are removed one by one
class BatchRequest:
    target: ModelTarget
    tokenizer: Any  # the target's own (an adapter may bring its own chat template); decodes this row
    prompt_ids: list[int]
    params: SamplingParams
    future: Future = field(default_factory=Future)  # -> Generation
    stream: RowStream | None = None  # set for a streaming request: its text goes out piece by piece

    def key(self) -> tuple:
        """Requests with equal keys can share one generate call."""
        p = self.params
        sampling = (0.0, 1.0) if p.temperature <= 0 else (p.temperature, p.top_p)
        return (self.target.base, self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, sampling)


class BatchScheduler:
    """Queues requests for one `ModelPool` and runs them in batches on a worker thread of its own."""

    def __init__(self, pool: Any, max_batch: int = DEFAULT_MAX_BATCH, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.pool = pool
        self.max_batch = max(1, max_batch)
        self.window_s = window_s
        self.batch_sizes: list[int] = []  # rows per generate call, oldest first: what tests and benchmarks read
        self._pending: list[BatchRequest] = []
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None

    def complete(self, target: ModelTarget, tokenizer: Any, prompt_ids: list[int],
                 params: SamplingParams) -> Generation:
        """Queue one request and wait for its generation (an exception in its batch is raised here)."""
        request = BatchRequest(target, tokenizer, list(prompt_ids), params)
        self._enqueue(request)
        return request.future.result()

    def stream(self, target: ModelTarget, tokenizer: Any, prompt_ids: list[int], params: SamplingParams,
               result: StreamResult) -> Iterator[str]:
        """Queue one request and yield its text as its batch generates it, as `stream_text` would alone.

        Closing the iterator early (the client left) cancels the row: its batch carries on without it, and
        stops at once when no row is left.
        """
        request = BatchRequest(target, tokenizer, list(prompt_ids), params)
        request.stream = RowStream(tokenizer, params, result)
        self._enqueue(request)
        try:
            while (piece := request.stream.pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            request.stream.cancelled = True
            with self._ready:  # not started yet: it never will be
                if request in self._pending:
                    self._pending.remove(request)

    def _enqueue(self, request: BatchRequest) -> None:
        with self._ready:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run_forever, name="batch-scheduler", daemon=True)
                self._worker.start()
            self._ready.notify_all()

    def _run_forever(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._pending))
                self._ready.wait_for(lambda: len(self._pending) >= self.max_batch, timeout=self.window_s)
            with self.pool.lock:  # a streaming request may hold the model: whatever queues meanwhile joins in
                batch = self._take_batch()
            if batch:
                self._run(batch)

    def _take_batch(self) -> list[BatchRequest]:
        """The oldest request and every queued one that can share its generate call, up to max_batch."""
        with self._ready:
            if not self._pending:  # the only one queued was a stream whose client left
                return []
            key = self._pending[0].key()
            batch = [r for r in self._pending if r.key() == key][: self.max_batch]
            self._pending = [r for r in self._pending if r not in batch]
        return batch

    def _run(self, batch: list[BatchRequest]) -> None:
        try:
            dirs = [r.target.adapter_dir for r in batch]
            for rows in self.pool.adapter_groups(batch[0].target.base, dirs):
                group = [batch[i] for i in rows]
                with self.pool.use_adapters(group[0].target.base, [r.target.adapter_dir for r in group]) as (
                        model, adapter_names):
                    self.batch_sizes.append(len(group))
                    generations = generate_rows(model, group, adapter_names)
                for request, generation in zip(group, generations):
                    request.future.set_result(generation)
        except BaseException as e:  # every waiting client hears of it; the worker carries on with the next batch
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(e)
                if request.stream is not None and not request.stream.done:
                    request.stream.fail(e)


class RowStream:
    """One streaming row's text, decoded token by token with `stream_text`'s rules, queued for its client.

    Text is held back while it could still be the start of a stop string or ends inside a multi-byte character;
    a stop string itself is never sent. `result` counts tokens as stream_text does (EOS included).
    """

    def __init__(self, tokenizer: Any, params: SamplingParams, result: StreamResult) -> None:
        self.tokenizer, self.params, self.result = tokenizer, params, result
        self.pieces: queue.Queue[str | BaseException | None] = queue.Queue()  # None: the stream has ended
        self.ids: list[int] = []
        self.sent = ""
        self.done = False
        self.cancelled = False  # set by the client's side when it goes away

    def push(self, token: int, eos: list[int]) -> None:
        if self.done or self.cancelled:
            return  # a finished row's padding, or nobody listens
        self.result.completion_tokens += 1
        if token in eos:
            return self._end("stop")
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = _first_stop(text, self.params.stop)
        if cut is not None:
            if cut > len(self.sent):
                self.pieces.put(text[len(self.sent):cut])
            return self._end("stop")
        ready = len(text) - _held_back(text, self.params.stop)
        if ready > len(self.sent):
            self.pieces.put(text[len(self.sent):ready])
            self.sent = text[:ready]
        if self.result.completion_tokens >= self.params.max_tokens:
            self.finish_at_length()

    def finish_at_length(self) -> None:
        """The row ran out of tokens: what was held back goes out now."""
        if self.done or self.cancelled:
            return
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent):
            self.pieces.put(text[len(self.sent):])
        self._end("length")

    def fail(self, error: BaseException) -> None:
        self.done = True
        self.pieces.put(error)

    def _end(self, reason: str) -> None:
        self.done = True
        self.result.finish_reason = reason
        self.pieces.put(None)


class _BatchStreamer(BaseStreamer):
    """Hands each step's tokens (one per row) to the streaming rows; the first call is the prompt, skipped."""

    def __init__(self, rows: list[RowStream | None], eos: list[int]) -> None:
        self.rows, self.eos = rows, eos
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for row, token in zip(self.rows, value.reshape(-1).tolist()):
            if row is not None:
                row.push(int(token), self.eos)

    def end(self) -> None:
        for row in self.rows:
            if row is not None:
                row.finish_at_length()


class _RowLimits(StoppingCriteria):
    """A row is done at its own max_tokens or once its text contains one of its own stop strings."""

    def __init__(self, requests: list[BatchRequest], prompt_width: int) -> None:
        self.requests, self.prompt_width = requests, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_width
        done = []
        for row, request in zip(input_ids, self.requests):
            stops = request.params.stop
            if request.stream is not None and request.stream.cancelled:
                done.append(True)  # its client left
            elif generated >= request.params.max_tokens:
                done.append(True)
            elif stops:
                # decoding only a tail keeps the check cheap; a stop string never spans more tokens than characters
                tail = max(len(s) for s in stops) + 2
                text = request.tokenizer.decode(row[max(self.prompt_width, input_ids.shape[1] - tail):])
                done.append(any(s in text for s in stops))
            else:
                done.append(False)
        return torch.tensor(done, device=input_ids.device)


def generate_rows(model: Any, requests: list[BatchRequest], adapter_names: list[str] | None) -> list[Generation]:
    """One left-padded `generate` over every request's prompt; each row cut at its own limits."""
    tokenizer = requests[0].tokenizer  # same pad and EOS ids in every row (BatchRequest.key)
    prompts = [r.prompt_ids for r in requests]
    width = max(len(ids) for ids in prompts)
    pad = tokenizer.pad_token_id
    input_ids, attention_mask = padded_batch(prompts, pad)
    device = next(model.parameters()).device
    eos = eos_token_ids(model, tokenizer)
    params = requests[0].params
    kwargs: dict[str, Any] = dict(max_new_tokens=max(r.params.max_tokens for r in requests), pad_token_id=pad,
                                  eos_token_id=eos, use_cache=True, do_sample=params.temperature > 0,
                                  stopping_criteria=StoppingCriteriaList([_RowLimits(requests, width)]))
    if params.temperature > 0:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:  # as predict.generate: silence "temperature is set but do_sample=False"
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if adapter_names is not None:
        kwargs["adapter_names"] = adapter_names
    if any(r.stream is not None for r in requests):
        kwargs["streamer"] = _BatchStreamer([r.stream for r in requests], eos)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **kwargs)
    latency = time.perf_counter() - started
    return [_finish(r.tokenizer, r.prompt_ids, row[width: width + r.params.max_tokens].tolist(), eos, pad,
                    r.params.stop, latency) for r, row in zip(requests, out)]

