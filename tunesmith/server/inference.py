"""Serving models: one loaded base model with many LoRA adapters over it, each base with its generation engine.

A request names a base model or a fine-tuned one; a fine-tuned model is its base plus an adapter folder.
The pool keeps each base loaded once and the adapters loaded on demand into the same PeftModel
(`load_adapter`), dropping the least recently used adapter beyond `max_adapters` (never one a running request
uses). Every request, streaming or not, goes to the base's `Engine` (tunesmith/generation), which runs in a
thread of its own: requests join and leave its running batch at every decode step, rows of different adapters
mixed in one step.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.generation import Completion, Engine, SamplingParams
from tunesmith.generation.engine import BASE_MODEL, DEFAULT_MAX_BATCH


@dataclass(frozen=True)
class ModelTarget:
    """What a request's `model` resolves to."""

    name: str  # as the client wrote it
    base: str  # catalog id or local directory of the base model
    adapter_dir: Path | None = None  # LoRA adapter over `base`


@dataclass
class _Base:
    loaded: Any  # tunesmith.models.LoadedModel
    engine: Engine
    peft: Any = None  # PeftModel wrapping loaded.model once the first adapter arrives
    adapters: OrderedDict = field(default_factory=OrderedDict)  # adapter dir -> (adapter name, tokenizer)


class ModelPool:
    def __init__(self, max_adapters: int = 8, max_bases: int = 2, max_batch: int = DEFAULT_MAX_BATCH,
                 prefix_tokens: int = 8192) -> None:
        self.max_adapters = max(1, max_adapters)
        self.max_bases = max(1, max_bases)
        self.max_batch = max(1, max_batch)
        self.prefix_tokens = prefix_tokens
        self._bases: OrderedDict[str, _Base] = OrderedDict()
        self._lock = threading.RLock()  # loading and dropping bases and adapters
        self._tokenizers: dict[tuple[str, Path | None], Any] = {}

    def tokenizer(self, target: ModelTarget) -> Any:
        """The target's tokenizer (its adapter's own when it saved one), loading base and adapter if needed."""
        key = (target.base, None if target.adapter_dir is None else Path(target.adapter_dir))
        if key not in self._tokenizers:
            with self._lock:
                base = self._base(target.base)
                self._tokenizers[key] = (base.loaded.tokenizer if key[1] is None
                                         else self._activate(base, key[1])[1])
        return self._tokenizers[key]

    def submit(self, target: ModelTarget, prompt_ids: list[int], params: SamplingParams,
               stream: bool = False) -> Completion:
        """Queue one request on its base's engine, with its adapter loaded; wait on, or stream, what comes back."""
        with self._lock:
            base = self._base(target.base)
            adapter, tokenizer = (BASE_MODEL, base.loaded.tokenizer) if target.adapter_dir is None else \
                self._activate(base, Path(target.adapter_dir))
            completion = base.engine.submit(prompt_ids, params, adapter=adapter, tokenizer=tokenizer, stream=stream)
        base.engine.start()
        return completion

    def engine(self, base_ref: str) -> Engine:
        with self._lock:
            return self._base(base_ref).engine

    def evict(self, adapter_dir: Path) -> None:
        """Forget an adapter (its model was deleted)."""
        with self._lock:
            for ref, base in self._bases.items():
                entry = base.adapters.pop(Path(adapter_dir), None)
                self._tokenizers.pop((ref, Path(adapter_dir)), None)
                if entry is not None:
                    with base.engine.lock:  # not in the middle of a step
                        base.peft.delete_adapter(entry[0])
                        base.engine.forget_adapter(entry[0])

    def loaded_adapters(self) -> list[Path]:
        return [d for base in self._bases.values() for d in base.adapters]

    def _base(self, ref: str) -> _Base:
        from tunesmith.models import load_model

        if ref in self._bases:
            self._bases.move_to_end(ref)
            return self._bases[ref]
        idle = [r for r, b in self._bases.items() if not b.engine.busy()]
        while len(self._bases) >= self.max_bases and idle:
            self._bases.pop(idle.pop(0))
        loaded = load_model(ref)
        engine = Engine(loaded.model, loaded.tokenizer, max_batch=self.max_batch, prefix_tokens=self.prefix_tokens,
                        learn_prefixes=True)
        self._bases[ref] = _Base(loaded, engine)
        return self._bases[ref]

    def _activate(self, base: _Base, adapter_dir: Path) -> tuple[str, Any]:
        """(PEFT adapter name, tokenizer) of an adapter folder, loaded into the base's PeftModel if needed."""
        from peft import PeftModel

        if adapter_dir in base.adapters:
            base.adapters.move_to_end(adapter_dir)
            return base.adapters[adapter_dir]
        name = f"a{abs(hash(str(adapter_dir))):x}"
        with base.engine.lock:  # the engine is between steps while the model changes under it
            if base.peft is None:
                base.peft = PeftModel.from_pretrained(base.loaded.model, str(adapter_dir), adapter_name=name)
                base.engine.model = base.peft
            else:
                base.peft.load_adapter(str(adapter_dir), adapter_name=name)
            base.peft.eval()
            base.adapters[adapter_dir] = (name, _adapter_tokenizer(adapter_dir, base.loaded.tokenizer))
            self._drop_old_adapters(base, keep=name)
        return base.adapters[adapter_dir]

    def _drop_old_adapters(self, base: _Base, keep: str) -> None:
        in_use = base.engine.adapters_in_use() | {keep}
        for adapter_dir in list(base.adapters):
            if len(base.adapters) <= self.max_adapters:
                return
            name = base.adapters[adapter_dir][0]
            if name not in in_use:
                del base.adapters[adapter_dir]
                self._tokenizers = {k: v for k, v in self._tokenizers.items() if k[1] != adapter_dir}
                base.peft.delete_adapter(name)
                base.engine.forget_adapter(name)


def _adapter_tokenizer(adapter_dir: Path, fallback: Any) -> Any:
    """The tokenizer saved with the adapter: the exact chat template it was trained with."""
    if not (adapter_dir / "tokenizer_config.json").is_file():
        return fallback
    from transformers import AutoTokenizer

    from tunesmith.models import ensure_pad_token

    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir), trust_remote_code=False)
    ensure_pad_token(tokenizer)
    return tokenizer
