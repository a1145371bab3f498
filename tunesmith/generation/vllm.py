"""An optional engine for GPUs: hand generation to vLLM, with the adapter folders the trainer wrote.

    tunesmith eval --engine vllm --model runs/<run> --data test.jsonl --grader exact

A run directory's adapter is served by vLLM as a `LoRARequest` over its base model (`enable_lora=True`): the same
`adapter_model.safetensors` and `adapter_config.json` bytes the trainer saved, read by vLLM's own LoRA loader, and
the prompt rendered by the same chat template (`encode_prompt`, the run's tokenizer), so what vLLM answers is
what `tunesmith eval` measured. Used only when vLLM is installed and a GPU is present; anything else is refused
with the reason (tests skip with it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tunesmith.generation.prompts import Prompt, encode_prompt
from tunesmith.generation.requests import Generation


def unavailable_reason() -> str | None:
    """Why vLLM cannot run here, or None when it can."""
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM is not installed (pip install vllm, on a machine with a CUDA GPU)"
    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible"
    return None


def generate_vllm(model_ref: str, tokenizer: Any, prompts: Sequence[Prompt], *, max_new_tokens: int = 256,
                  stop: Sequence[str] | None = None, temperature: float = 0.0, top_p: float = 1.0,
                  seed: int | None = None, on_progress: Callable[[int, int], None] | None = None) -> list[Generation]:
    """One reply per prompt through vLLM (same result type as `tunesmith.generation.generate`)."""
    reason = unavailable_reason()
    if reason is not None:
        raise ValueError(f"--engine vllm: {reason}")
    from vllm import LLM, SamplingParams, TokensPrompt
    from vllm.lora.request import LoRARequest

    base, adapter, rank = _base_and_adapter(model_ref)
    llm = LLM(model=base, enable_lora=adapter is not None, max_lora_rank=max(16, rank), seed=seed or 0)
    lora = LoRARequest("adapter", 1, str(adapter)) if adapter is not None else None
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=list(stop or []),
                            seed=seed)
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    started = time.perf_counter()
    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in encoded], params, lora_request=lora)
    latency = time.perf_counter() - started
    if on_progress is not None:
        on_progress(len(encoded), len(encoded))
    return [Generation(o.outputs[0].text, len(ids), len(o.outputs[0].token_ids),
                       "length" if o.outputs[0].finish_reason == "length" else "stop", latency,
                       list(o.outputs[0].token_ids)) for o, ids in zip(outputs, encoded)]


def _base_and_adapter(model_ref: str) -> tuple[str, Path | None, int]:
    """(base model id vLLM loads, adapter folder or None, LoRA rank) for a catalog id, hub id or run directory."""
    from tunesmith.catalog import find_model_spec
    from tunesmith.models import base_model_id, find_adapter_dir

    path = Path(model_ref)
    adapter = find_adapter_dir(path) if path.exists() else None
    if adapter is None:
        spec = find_model_spec(model_ref)
        return (spec.hf_id if spec is not None and spec.hf_id else model_ref), None, 0
    config = json.loads((adapter / "adapter_config.json").read_text())
    base, _warnings = base_model_id(adapter, config)
    return base, adapter, int(config.get("r", 16))
