"""`tunesmith export RUN --format vllm`: the run's LoRA adapter as vLLM's `--lora-modules` loads it.

vLLM serves a PEFT adapter folder over the base model it was trained on, but only for the linear layers its own
implementation of the architecture can carry LoRA on (it fuses q/k/v into qkv_proj and gate/up into
gate_up_proj, and accepts adapters on either the fused or the unfused names), with no `modules_to_save`, no
DoRA and no bias. The folder gets the base model's hub id, the adapter weights as safetensors, and the exact
chat template, which the printed `vllm serve` line passes with `--chat-template`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.catalog import find_model_spec
from tunesmith.models import base_model_id
from tunesmith.models import find_adapter_dir

# vLLM's LoRA-capable modules per architecture (model_type): the decoder's linear layers, fused and unfused
# names, plus the embeddings and head vLLM can also carry LoRA on.
VLLM_LORA_MODULES = {
    "llama": {"q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj",
              "down_proj", "embed_tokens", "lm_head"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"},
}
VLLM_DEFAULT_MAX_LORA_RANK = 16


@dataclass
class VllmExport:
    adapter_dir: Path
    base_model: str
    name: str
    command: str
    warnings: list[str] = field(default_factory=list)


def export_vllm(run_dir: Path | str, output: Path | str, *, name: str | None = None) -> VllmExport:
    """Copy the run's adapter to `output` as vLLM loads it and return the `vllm serve` command line."""
    run_dir, output = Path(run_dir), Path(output)
    adapter = find_adapter_dir(run_dir)
    if adapter is None:
        raise FileNotFoundError(f"{run_dir} holds no LoRA adapter (a full fine-tune serves as a plain model: "
                                "`tunesmith export RUN --merged DIR`, then `vllm serve DIR`)")
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} exists and is not empty; choose a new folder")
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: vLLM loads the adapter from safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text())
    model_type = _model_type(config)
    base, warnings = base_model_id(adapter, config)
    config["base_model_name_or_path"] = base
    warnings += unsupported_module_warnings(config, model_type)
    output.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weights, output / "adapter_model.safetensors")
    (output / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for extra in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (adapter / extra).is_file():
            shutil.copy2(adapter / extra, output / extra)
    template = output / "chat_template.jinja"
    if not template.is_file():
        tokenizer_config = json.loads((adapter / "tokenizer_config.json").read_text())
        template.write_text(tokenizer_config.get("chat_template") or "")
    name = name or run_dir.resolve().name
    command = serve_command(base, name, output, template, int(config.get("r", 8)))
    return VllmExport(output, base, name, command, warnings)


def serve_command(base: str, name: str, adapter: Path, template: Path, rank: int) -> str:
    parts = ["vllm serve", base, "--enable-lora", f"--lora-modules {name}={adapter.resolve()}",
             f"--chat-template {template.resolve()}"]
    if rank > VLLM_DEFAULT_MAX_LORA_RANK:
        parts.append(f"--max-lora-rank {rank}")
    return " ".join(parts)


def unsupported_module_warnings(config: dict, model_type: str) -> list[str]:
    """What in this adapter config vLLM will not load for `model_type`."""
    supported = VLLM_LORA_MODULES.get(model_type)
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    if supported is None:
        return [f"vLLM's LoRA support for architecture {model_type!r} is not known to tunesmith; check its docs"]
    warnings = [f"vLLM does not support LoRA on module {m!r} for {model_type}; it will refuse the adapter"
                for m in targets if m.split(".")[-1] not in supported]
    if config.get("modules_to_save"):
        warnings.append(f"vLLM ignores modules_to_save {config['modules_to_save']}: those weights will be lost")
    if config.get("use_dora"):
        warnings.append("vLLM does not serve DoRA adapters")
    if config.get("bias", "none") != "none":
        warnings.append("vLLM does not load LoRA bias terms")
    return warnings


def _model_type(config: dict) -> str:
    """The base architecture: its catalog family or its folder's config.json, else read off the targets."""
    base = config.get("base_model_name_or_path") or ""
    spec = find_model_spec(base)
    if spec is not None:
        return "phi3" if spec.family == "phi3" else "llama"
    config_file = Path(base) / "config.json"
    if config_file.is_file():
        return json.loads(config_file.read_text()).get("model_type", "")
    targets = set(config.get("target_modules") or [])
    return "phi3" if {"qkv_proj", "gate_up_proj"} & targets else "llama"
