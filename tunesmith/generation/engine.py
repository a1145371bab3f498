"""The one generation engine: iteration-level scheduling (continuous batching, as in Orca and vLLM) over a
model's plain forward pass with a KV cache.

Every iteration the engine (1) drops rows whose caller went away, (2) admits waiting requests into free slots,
prefilling them apart and merging them into the running batch (kv.py), (3) runs ONE decode step for every
running row and (4) lets finished rows go at once. A request never waits for a batch to drain, and a short
answer never rides along with a long one.

Rows of different LoRA adapters over the one base model share a step through PEFT's mixed-adapter batches
(`adapter_names`); adapters PEFT cannot mix (DoRA, non-LoRA) get a cohort of their own, stepped in turn.
A failure is the failing row's alone: non-finite logits fail that row, a forward that raises is retried row by
row to find who caused it, and PEFT's forward hooks are removed in a `finally` even when a forward raises.

Use it offline (`Engine.generate` or `generate()` in this package run the loop in the caller's thread until
every prompt is answered) or online (`start()` runs the loop in a thread; the server submits and waits).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from tunesmith.generation import kv
from tunesmith.generation.prefixes import PrefixHit, PrefixStore
from tunesmith.generation.prompts import context_length, eos_token_ids
from tunesmith.generation.requests import Completion, ContextLengthError, Generation, GenerationError, Row
from tunesmith.generation.sampling import SamplingParams, choose_token, token_logprob
from tunesmith.generation.text import RowText

DEFAULT_MAX_BATCH = 16
PREFILL_TOKEN_BUDGET = 4096  # padded tokens per prefill forward: bounds the memory of admitting many at once
MIXED = "__mixed__"  # the cohort of the base model and every LoRA adapter PEFT can mix in one batch
BASE_MODEL = "__base__"  # a row's adapter: the base model with every adapter off (PEFT's own name for it)
# A row's adapter None means "the model as it is": a PeftModel's active adapter (a run being evaluated), or the
# plain model. The server names every row's adapter, BASE_MODEL included, since its adapters come and go.


@dataclass
class Cohort:
    rows: list[Row] = field(default_factory=list)
    state: kv.KVState | None = None


class Engine:
    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = DEFAULT_MAX_BATCH,
                 prefix_tokens: int = 8192, learn_prefixes: bool = False) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_batch = max(1, max_batch)
        self.prefixes = PrefixStore(prefix_tokens)
        self.learn_prefixes = learn_prefixes  # the server learns repeated prompt starts; an eval is told its own
        self.lock = threading.RLock()  # held for each iteration: whoever changes the model's adapters takes it
        self.steps: list[int] = []  # rows per decode step, oldest first: what tests and benchmarks read
        self._waiting: list[Row] = []
        self._cohorts: dict[str, Cohort] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cache_arg = kv.cache_argument(model)
        self._device = next(model.parameters()).device

    # -- the caller's side -------------------------------------------------------------------------------------
    def submit(self, prompt: list[int], params: SamplingParams, *, adapter: str | None = None,
               tokenizer: Any = None, stream: bool = False) -> Completion:
        """Queue one request; `tokenizer` decodes its reply (an adapter may bring its own)."""
        tokenizer = tokenizer or self.tokenizer
        context = context_length(self.model)
        if not prompt:
            raise ValueError("the prompt is empty")
        if context is not None and len(prompt) >= context:
            raise ContextLengthError(f"This model's maximum context length is {context} tokens; the prompt has "
                                     f"{len(prompt)}.")
        if context is not None:
            params.max_tokens = min(params.max_tokens, context - len(prompt))
        eos = set() if params.ignore_eos else set(eos_token_ids(self.model, tokenizer))
        row = Row(list(prompt), params, adapter, RowText(tokenizer, list(params.stop), eos))
        if stream:
            import queue

            row.pieces = queue.Queue()
            row.text.stream()
        with self._wake:
            self._waiting.append(row)
            self._wake.notify_all()
        return Completion(row, self._notify)

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams | Sequence[SamplingParams], *,
                 adapters: Sequence[str | None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[Generation]:
        """Answer every prompt (in their order), running the loop here unless a thread already runs it."""
        each = list(params) if isinstance(params, (list, tuple)) else [params] * len(prompts)
        names = list(adapters) if adapters is not None else [None] * len(prompts)
        jobs = [self.submit(p, SamplingParams(**vars(q)), adapter=a) for p, q, a in zip(prompts, each, names)]
        done = 0
        while done < len(jobs):
            if self._thread is None:
                self.step()
            else:
                jobs[done]._row.future.exception()  # wait for the thread
            finished = sum(j.done() for j in jobs)
            if on_progress is not None and finished > done:
                on_progress(finished, len(jobs))
            done = finished
        return [j.result() for j in jobs]

    def start(self) -> None:
        """Run the loop in a daemon thread of its own (the server's way)."""
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run_forever, name="generation-engine", daemon=True)
                self._thread.start()

    def busy(self) -> bool:
        """Whether any request is waiting or running."""
        with self._wake:
            return self._has_work()

    def adapters_in_use(self) -> set[str]:
        with self._wake:
            rows = self._waiting + [r for c in self._cohorts.values() for r in c.rows]
        return {r.adapter for r in rows if r.adapter is not None and not r.finished}

    def forget_adapter(self, name: str) -> None:
        with self.lock:
            self.prefixes.forget(name)

    def remember_prefix(self, tokens: list[int], adapter: str | None = None) -> None:
        """Prefill `tokens` once and keep their cache: prompts that start with them skip that part."""
        with self.lock:
            state, _ = self._prefill_forward([Row(list(tokens), SamplingParams(), adapter,
                                                  RowText(self.tokenizer, [], set()))], None)
            self.prefixes.add(adapter, list(tokens), kv.row_cache(state, 0))

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _run_forever(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(self._has_work)
            self.step()

    def _has_work(self) -> bool:
        return any(not r.finished for r in self._waiting) or \
            any(not r.finished for c in self._cohorts.values() for r in c.rows)

    # -- one iteration -----------------------------------------------------------------------------------------
    def step(self) -> None:
        """One scheduler iteration: drop, admit, decode one token for every running row."""
        with self.lock:
            self._drop_finished()
            self._admit()
            for cohort in list(self._cohorts.values()):
                if cohort.rows:
                    self._decode(cohort)
            self._drop_finished()

    def _drop_finished(self, compact_all: bool = False) -> None:
        """Let finished rows go. Their cache columns stay (decoding a dead row costs less than copying the whole
        cache to drop it) until a cohort is mostly dead or new rows merge in (compact_all): then one copy does both.
        """
        with self._wake:
            self._waiting = [r for r in self._waiting if not r.finished]
        for key, cohort in list(self._cohorts.items()):
            for r in cohort.rows:
                if r.cancelled and not r.future.done():
                    r.fail(GenerationError("cancelled"))
            keep = [i for i, r in enumerate(cohort.rows) if not r.finished]
            if not keep:
                del self._cohorts[key]
            elif len(keep) < len(cohort.rows) and (compact_all or 2 * len(keep) <= len(cohort.rows)):
                cohort.rows = [cohort.rows[i] for i in keep]
                cohort.state = kv.keep_rows(cohort.state, keep) if cohort.state else None

    def _admit(self) -> None:
        """Fill free slots; while others run, wait until a quarter of the slots are free (or every waiting request
        fits) so the cache is re-copied once for several joiners rather than once each."""
        live = sum(not r.finished for c in self._cohorts.values() for r in c.rows)
        free = self.max_batch - live
        with self._wake:
            waiting = len(self._waiting)
            if not waiting or free <= 0 or (live and free < max(1, self.max_batch // 4) and waiting > free):
                return
            taken = self._waiting[:free]
            self._waiting = self._waiting[len(taken):]
        self._drop_finished(compact_all=True)
        for group in self._prefill_groups(taken):
            self._prefill(group)

    def _prefill_groups(self, rows: list[Row]) -> Iterator[tuple[list[Row], PrefixHit | None]]:
        """Rows that prefill together: the same cohort and cached prefix, similar lengths, within the budget."""
        groups: dict[tuple, tuple[list[Row], PrefixHit | None]] = {}
        for row in sorted(rows, key=lambda r: len(r.prompt)):
            hit = self.prefixes.find(row.adapter, row.prompt)
            key = (self._cohort_key(row.adapter), hit.key if hit else None, hit.tokens if hit else 0)
            groups.setdefault(key, ([], hit))[0].append(row)
        for members, hit in groups.values():
            chunk: list[Row] = []
            for row in members:
                width = len(row.prompt) - (hit.tokens if hit else 0)
                if chunk and (len(chunk) + 1) * width > PREFILL_TOKEN_BUDGET:
                    yield chunk, hit
                    chunk = []
                chunk.append(row)
            if chunk:
                yield chunk, hit

    def _prefill(self, group: tuple[list[Row], PrefixHit | None]) -> None:
        rows, hit = group
        try:
            state, logits = self._prefill_forward(rows, hit)
        except Exception as e:
            if len(rows) == 1:
                return rows[0].fail(GenerationError(f"generation failed while reading the prompt: {e}"))
            for row in rows:  # find who caused it: the others are prefilled alone
                self._prefill(([row], hit))
            return
        self._learn(rows, state)
        cohort = self._cohorts.setdefault(self._cohort_key(rows[0].adapter), Cohort())
        cohort.state = kv.merge(cohort.state, state)
        cohort.rows.extend(rows)
        self._take_tokens(rows, logits)

    def _prefill_forward(self, rows: list[Row], hit: PrefixHit | None) -> tuple[kv.KVState, torch.Tensor]:
        """Run the rows' prompts (their tails after a cached prefix) through the model in one padded forward."""
        n = hit.tokens if hit else 0
        tails = [r.prompt[n:] for r in rows]
        width = max(len(t) for t in tails)
        ids = torch.tensor([[0] * (width - len(t)) + t for t in tails], device=self._device)
        tail_mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails], device=self._device)
        mask = torch.cat([torch.ones(len(rows), n, dtype=torch.long, device=self._device), tail_mask], dim=1)
        positions = torch.tensor([[0] * (width - len(t)) + list(range(n, n + len(t))) for t in tails],
                                 device=self._device)
        cache = kv.repeat_prefix(hit.cache, n, len(rows)) if hit else kv.new_cache()
        logits = self._forward(ids, mask, positions, cache, [r.adapter for r in rows])
        lengths = torch.tensor([len(r.prompt) for r in rows], device=self._device)
        return kv.KVState(cache, mask, lengths), logits

    def _learn(self, rows: list[Row], state: kv.KVState) -> None:
        if not self.learn_prefixes or not kv.plain_layers(state.cache):
            return
        for i, row in enumerate(rows):
            if not self.prefixes.covers(row.adapter, row.prompt):
                self.prefixes.add(row.adapter, row.prompt, kv.row_cache(state, i))

    def _decode(self, cohort: Cohort) -> None:
        state = cohort.state
        assert state is not None
        ids = torch.tensor([[r.next_token] for r in cohort.rows], device=self._device)
        mask = torch.cat([state.mask, torch.ones(state.rows, 1, dtype=state.mask.dtype, device=self._device)], 1)
        try:
            logits = self._forward(ids, mask, state.positions[:, None], state.cache, [r.adapter for r in cohort.rows])
        except Exception as e:
            kv.truncate(state)  # layers the failed forward appended to go back to the mask's length
            if any(r.finished for r in cohort.rows):  # a dead row may be the cause: retry without them first
                keep = [i for i, r in enumerate(cohort.rows) if not r.finished]
                cohort.rows, cohort.state = [cohort.rows[i] for i in keep], kv.keep_rows(state, keep)
                return
            return self._isolate(cohort, e)
        self.steps.append(state.rows)
        cohort.state = kv.KVState(state.cache, mask, state.positions + 1)
        self._take_tokens(cohort.rows, logits)

    def _isolate(self, cohort: Cohort, error: Exception) -> None:
        """A decode step raised: run each row alone on a copy to find the rows that fail; only those fail."""
        state = cohort.state
        assert state is not None
        culprits = []
        for i, row in enumerate(cohort.rows):
            if row.finished:
                continue
            alone = kv.keep_rows(state, [i])
            try:
                self._forward(torch.tensor([[row.next_token]], device=self._device),
                              torch.cat([alone.mask, torch.ones_like(alone.mask[:, :1])], 1),
                              alone.positions[:, None], alone.cache, [row.adapter])
            except Exception as e:
                culprits.append((row, e))
        for row, e in culprits or [(r, error) for r in cohort.rows if not r.finished]:  # nobody fails alone
            row.fail(GenerationError(f"generation failed: {type(e).__name__}: {e}"))

    def _take_tokens(self, rows: list[Row], logits: torch.Tensor) -> None:
        """Choose each row's next token from its logits ([rows, vocab]) and hand it on; a bad row fails alone."""
        finite = torch.isfinite(logits).all(dim=-1).tolist()
        greedy = logits.argmax(dim=-1).tolist()
        for i, row in enumerate(rows):
            if row.finished:
                continue
            try:
                if not finite[i]:
                    raise GenerationError("the model produced non-finite logits (NaN or infinity) for this "
                                          "request: its weights are probably corrupt (a diverged fine-tune?)")
                p = row.params
                token = greedy[i] if p.greedy else choose_token(logits[i], p, row.generator)
                logprob = token_logprob(logits[i], token, p.logprobs) if p.logprobs is not None else None
                row.take(token, logprob)
            except Exception as e:
                row.fail(e if isinstance(e, GenerationError) else GenerationError(f"{type(e).__name__}: {e}"))

    # -- the model ---------------------------------------------------------------------------------------------
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any,
                 adapters: list[str | None]) -> torch.Tensor:
        """Last-position logits ([rows, vocab], float32 on the CPU) of one forward pass over the cache."""
        with torch.inference_mode(), self._adapters(adapters) as extra:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1, **{self._cache_arg: cache}, **extra)
        return out.logits[:, -1].float().cpu()

    @contextmanager
    def _adapters(self, adapters: list[str | None]) -> Iterator[dict[str, Any]]:
        """The forward's adapter setting for these rows; PEFT's per-row hooks are always removed afterwards."""
        names = [self._resolved(a) for a in adapters]
        distinct = set(names)
        if not hasattr(self.model, "peft_config"):
            yield {}
        elif distinct == {BASE_MODEL}:
            with self.model.disable_adapter():
                yield {}
        elif len(distinct) == 1:
            self.model.set_adapter(names[0])
            yield {}
        else:
            with _no_leaked_hooks(self.model):
                yield {"adapter_names": names}

    def _resolved(self, adapter: str | None) -> str:
        """The PEFT adapter name a row runs with (BASE_MODEL for none); a name the model lacks is an error."""
        if not hasattr(self.model, "peft_config"):
            if adapter not in (None, BASE_MODEL):
                raise GenerationError(f"no adapter {adapter!r} is loaded on this model")
            return BASE_MODEL
        if adapter is None:
            active = self.model.active_adapter
            return active if isinstance(active, str) else active[0]
        return adapter

    def _cohort_key(self, adapter: str | None) -> str:
        if adapter == BASE_MODEL or not hasattr(self.model, "peft_config"):
            return MIXED
        config = self.model.peft_config.get(self._resolved(adapter))
        mixable = getattr(config, "peft_type", None) == "LORA" and not getattr(config, "use_dora", False)
        return MIXED if mixable else self._resolved(adapter)


@contextmanager
def _no_leaked_hooks(model: Any) -> Iterator[None]:
    """Remove every forward pre-hook a forward adds, even when it raises (peft's own context has no finally)."""
    modules = list(model.modules())
    before = [set(m._forward_pre_hooks) for m in modules]
    try:
        yield
    finally:
        for module, old in zip(modules, before):
            for key in set(module._forward_pre_hooks) - old:
                module._forward_pre_hooks.pop(key, None)
                module._forward_pre_hooks_with_kwargs.pop(key, None)
