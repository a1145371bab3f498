"""Serving models: one loaded base model with many LoRA adapters over it, and token-by-token streaming.

A request names a base model or a fine-tuned one; a fine-tuned model is its base plus an adapter folder.
The pool keeps each base loaded once and the adapters loaded on demand into the same PeftModel
(`load_adapter` / `set_adapter`), dropping the least recently used adapter beyond `max_adapters`.
A streaming request holds the whole pool (`ModelPool.use`) while its adapter is switched on the shared model.
Non-streaming requests go through `ModelPool.batcher` (batching.py): concurrent ones share one batched
`generate`, rows for different adapters over one base included (PEFT's mixed-adapter batches).
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch


@dataclass(frozen=True)
class ModelTarget:
    """What a request's `model` resolves to."""

    name: str  # as the client wrote it
    base: str  # catalog id or local directory of the base model
    adapter_dir: Path | None = None  # LoRA adapter over `base`


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class _Base:
    loaded: Any  # tunesmith.models.LoadedModel
    peft: Any = None  # PeftModel wrapping loaded.model once the first adapter arrives
    adapters: OrderedDict = field(default_factory=OrderedDict)  # adapter dir -> (adapter name, tokenizer)


class ModelPool:
    def __init__(self, max_adapters: int = 8, max_bases: int = 2, max_batch: int = 16,
                 batch_window_s: float = 0.01) -> None:
        from tunesmith.server.batching import BatchScheduler

        self.max_adapters = max(1, max_adapters)
        self.max_bases = max(1, max_bases)
        self._bases: OrderedDict[str, _Base] = OrderedDict()
        self._lock = threading.Lock()  # a plain Lock: a streaming response may release it from another thread
        self._tokenizers: dict[tuple[str, Path | None], Any] = {}  # read without the lock: a batch may hold it
        # max_batch 1 turns batching off: chat_api then serves each request alone, holding the pool
        self.batcher = BatchScheduler(self, max_batch=max_batch, window_s=batch_window_s)

    @property
    def lock(self) -> threading.Lock:
        """Held while anything runs on the models: a stream, a batch, loading or dropping an adapter."""
        return self._lock

    def tokenizer(self, target: ModelTarget) -> Any:
        """The target's tokenizer (its adapter's own when it saved one), loading base and adapter if needed."""
        key = (target.base, None if target.adapter_dir is None else Path(target.adapter_dir))
        if key not in self._tokenizers:
            with self._lock:
                base = self._base(target.base)
                self._tokenizers[key] = (base.loaded.tokenizer if key[1] is None
                                         else self._activate(base, key[1]))
        return self._tokenizers[key]

    def adapter_groups(self, base_ref: str, dirs: list[Path | None]) -> list[list[int]]:
        """Rows (indices into `dirs`) that can run in one generate call: all of them when PEFT can mix their
        adapters in one batch, else one group per adapter (DoRA, non-LoRA adapters, more adapters than stay loaded).
        """
        distinct = list(dict.fromkeys(None if d is None else Path(d) for d in dirs))
        by_adapter = [[i for i, d in enumerate(dirs) if (None if d is None else Path(d)) == a] for a in distinct]
        if len(distinct) == 1:
            return by_adapter
        adapters = [a for a in distinct if a is not None]
        if len(adapters) > self.max_adapters:
            return by_adapter
        with self._lock:
            base = self._base(base_ref)
            for a in adapters:
                self._activate(base, a)
            configs = [base.peft.peft_config[base.adapters[a][0]] for a in adapters]
        mixable = all(getattr(c, "peft_type", None) == "LORA" and not getattr(c, "use_dora", False) for c in configs)
        return [list(range(len(dirs)))] if mixable else by_adapter

    @contextmanager
    def use_adapters(self, base_ref: str, dirs: list[Path | None]) -> Iterator[tuple[Any, list[str] | None]]:
        """Hold the pool and yield `(model, adapter_names)` for a batch whose row i asks for adapter `dirs[i]`.

        adapter_names is PEFT's per-row list ("__base__" for the base model) when the rows mix adapters, None when
        they all ask for the same one (then simply active, or disabled for the base model).
        """
        distinct = list(dict.fromkeys(None if d is None else Path(d) for d in dirs))
        if len(distinct) == 1:
            with self.use(ModelTarget(base_ref, base_ref, distinct[0])) as (model, _tokenizer):
                yield model, None
            return
        with self._lock:
            base = self._base(base_ref)
            for a in distinct:
                if a is not None:
                    self._activate(base, a)
            yield base.peft, ["__base__" if d is None else base.adapters[Path(d)][0] for d in dirs]

    @contextmanager
    def use(self, target: ModelTarget) -> Iterator[tuple[Any, Any]]:
        """Hold the pool and yield `(model, tokenizer)` with the target's adapter active (or none)."""
        with self._lock:
            base = self._base(target.base)
            if target.adapter_dir is None:
                if base.peft is not None:
                    with base.peft.disable_adapter():
                        yield base.peft, base.loaded.tokenizer
                else:
                    yield base.loaded.model, base.loaded.tokenizer
                return
            tokenizer = self._activate(base, Path(target.adapter_dir))
            yield base.peft, tokenizer

    def evict(self, adapter_dir: Path) -> None:
        """Forget an adapter (its model was deleted)."""
        with self._lock:
            for ref, base in self._bases.items():
                entry = base.adapters.pop(Path(adapter_dir), None)
                self._tokenizers.pop((ref, Path(adapter_dir)), None)
                if entry is not None:
                    base.peft.delete_adapter(entry[0])

    def loaded_adapters(self) -> list[Path]:
        return [d for base in self._bases.values() for d in base.adapters]

    def _base(self, ref: str) -> _Base:
        from tunesmith.models import load_model

        if ref in self._bases:
            self._bases.move_to_end(ref)
            return self._bases[ref]
        while len(self._bases) >= self.max_bases:
            self._bases.popitem(last=False)
        self._bases[ref] = _Base(load_model(ref))
        return self._bases[ref]

    def _activate(self, base: _Base, adapter_dir: Path) -> Any:
        from peft import PeftModel

        if adapter_dir in base.adapters:
            base.adapters.move_to_end(adapter_dir)
            name, tokenizer = base.adapters[adapter_dir]
        else:
            name = f"a{abs(hash(str(adapter_dir))):x}"
            if base.peft is None:
                base.peft = PeftModel.from_pretrained(base.loaded.model, str(adapter_dir), adapter_name=name)
            else:
                base.peft.load_adapter(str(adapter_dir), adapter_name=name)
            base.peft.eval()
            tokenizer = _adapter_tokenizer(adapter_dir, base.loaded.tokenizer)
            base.adapters[adapter_dir] = (name, tokenizer)
        base.peft.set_adapter(name)  # before any eviction: PEFT complains when the active adapter is deleted
        while len(base.adapters) > self.max_adapters:
            _old_dir, (old_name, _) = base.adapters.popitem(last=False)
            base.peft.delete_adapter(old_name)
        return tokenizer


def _adapter_tokenizer(adapter_dir: Path, fallback: Any) -> Any:
    """The tokenizer saved with the adapter: the exact chat template it was trained with."""
    if not (adapter_dir / "tokenizer_config.json").is_file():
        return fallback
    from transformers import AutoTokenizer

    from tunesmith.models import ensure_pad_token

    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir), trust_remote_code=False)
    ensure_pad_token(tokenizer)
    return tokenizer


@dataclass
class StreamResult:
    """Filled in as a stream runs: how it ended and how many tokens it produced."""

    finish_reason: str | None = None
    completion_tokens: int = 0


@torch.no_grad()
def stream_text(model: Any, tokenizer: Any, prompt_ids: list[int], params: SamplingParams,
                result: StreamResult) -> Iterator[str]:
    """Yield the completion's text piece by piece, one forward pass per token over a KV cache.

    Text is held back while it could still be the start of a stop string or ends inside a multi-byte
    character; a stop string itself is never sent.
    """
    device = next(model.parameters()).device
    eos = _eos_ids(model, tokenizer)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(params.seed if params.seed is not None else torch.seed())
    ids = torch.tensor([prompt_ids], device=device)
    cache_arg = _cache_argument(model)
    past = None
    out_ids: list[int] = []
    sent = ""
    for _ in range(params.max_tokens):
        out = model(input_ids=ids, use_cache=True, **({cache_arg: past} if past is not None else {}))
        past = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
        token = _sample(out.logits[0, -1], params, generator)
        result.completion_tokens += 1
        if token in eos:
            result.finish_reason = "stop"
            break
        out_ids.append(token)
        text = tokenizer.decode(out_ids, skip_special_tokens=True)
        cut = _first_stop(text, params.stop)
        if cut is not None:
            if cut > len(sent):
                yield text[len(sent):cut]
            result.finish_reason = "stop"
            return
        ready = len(text) - _held_back(text, params.stop)
        if ready > len(sent):
            yield text[len(sent):ready]
            sent = text[:ready]
        ids = torch.tensor([[token]], device=device)
    else:
        result.finish_reason = "length"
    text = tokenizer.decode(out_ids, skip_special_tokens=True)
    if len(text) > len(sent):
        yield text[len(sent):]


def _cache_argument(model: Any) -> str:
    """transformers 5.x renamed the KV-cache argument `past_key_values` to `cache`; take whichever it has."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    logits = logits.float().cpu()
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest set whose mass reaches top_p (the most likely token always stays)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= params.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters to hold: a partial character, or a prefix of some stop string."""
    if text.endswith("\ufffd"):
        return 1
    hold = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    return hold
