"""TrainConfig: the one schema behind `tunesmith train` flags, its YAML `--config` file and `tunesmith.train()`.

Hyperparameters use OpenAI's names and accept "auto" the way its fine-tuning API does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunesmith.catalog import DEFAULT_MODEL
from tunesmith.hparams import limit_error

Auto = Literal["auto"]


class TrainConfigError(ValueError):
    """A config the user must fix; the message names the file and field."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    model: str = Field(DEFAULT_MODEL, description="catalog id, hub id, local HF dir, .gguf, adapter or run directory")
    training_file: Path = Field(..., alias="train", description="training data (JSONL chat, any supported format)")
    validation_file: Path | None = Field(None, alias="validation", description="validation data")
    method: Literal["lora", "qlora", "full", "dpo"] = Field(
        "lora", description="lora | qlora (CUDA + bitsandbytes) | full | dpo (preference pairs; see --dpo-weights)")
    beta: Union[float, Auto] = Field("auto", description="dpo: how far the model may move from the reference "
                                     "(OpenAI's range: > 0 and <= 2; auto = 0.1)")
    dpo_weights: Literal["lora", "qlora", "full"] = Field(
        "lora", description="dpo: what trains, a LoRA adapter (the reference is the model as loaded) or every "
        "weight (full)")
    n_epochs: Union[int, Auto] = Field("auto", description="passes over the training data; auto from its size")
    batch_size: Union[int, Auto] = Field("auto", description="examples per optimizer step; auto ≈ 0.2% of examples")
    learning_rate_multiplier: Union[float, Auto] = Field(
        "auto", description="scales the method's base learning rate (LoRA 2e-3, full 2e-4)"
    )
    seed: int = Field(0, description="same seed, same data order and same loss curve on CPU")
    suffix: str | None = Field(None, max_length=64, description="appended to the fine-tuned model's name")
    output: Path | None = Field(None, description="run directory (default: <data dir>/runs/<run id>)")

    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA branch's input")
    lora_target_modules: list[str] | None = Field(
        None, description="module names LoRA adapts (one flag per name); default: every linear layer of the family"
    )
    max_length: int | None = Field(None, ge=8, description="tokens per example; default min(context length, 4096)")
    truncation: Literal["truncate", "reject"] = Field(
        "truncate", description="over-long examples: cut at max_length with a warning, or refuse to train"
    )
    micro_batch_tokens: int = Field(4096, ge=64, description="tokens per forward pass; more are accumulated")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="share of steps with a linear warm-up")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    eval_steps: int | None = Field(None, ge=1, description="validation batch every N steps (default ~10 per run)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward: less memory, "
                                         "about a third more compute per step")
    torch_compile: bool = Field(False, description="compile the forward with torch.compile (CUDA: faster steps "
                                "after a warm-up of recompiles; CPU: rarely worth it)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when a GPU is visible, else cpu")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="base weights: auto = bfloat16 on CUDA, and for LoRA on CPUs with native bf16 "
        "matmul (AMX / AVX512-BF16); float32 otherwise. Adapter weights always train in float32"
    )
    save_total_limit: int = Field(3, ge=1, description="checkpoints kept")

    @field_validator("n_epochs", "batch_size", "learning_rate_multiplier", "beta")
    @classmethod
    def _within_limits(cls, v: Any, info: Any) -> Any:
        problem = limit_error(info.field_name, v)  # the same limits as the jobs API (hparams.LIMITS)
        if problem:
            raise ValueError(problem)
        return v

    @property
    def weights(self) -> str:
        """How the weights train: lora | qlora | full (DPO names it in dpo_weights)."""
        return self.dpo_weights if self.method == "dpo" else self.method

    def to_json_dict(self) -> dict[str, Any]:
        """Field names (not aliases), paths as strings: what config.json holds and the YAML file may say."""
        return self.model_dump(mode="json", by_alias=False)

    @classmethod
    def from_json_dict(cls, saved: dict[str, Any]) -> "TrainConfig":
        """The inverse of to_json_dict; what the trainer added to config.json (base_model, world_size, …)
        is left out."""
        return cls(**{k: v for k, v in saved.items() if k in cls.model_fields})


def load_config_file(path: Path, **overrides: Any) -> TrainConfig:
    """A TrainConfig from YAML (or JSON), with command-line values taking precedence over the file's."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise TrainConfigError(f"{path}: cannot read config: {e}") from e
    if not isinstance(data, dict):
        raise TrainConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    data = {_field_name(k): v for k, v in data.items()}
    data.update({_field_name(k): v for k, v in overrides.items() if v is not None})
    return build_config(data, source=str(path))


def _field_name(key: str) -> str:
    """A YAML key or CLI option (`n-epochs`, the `train` / `validation` aliases) as the TrainConfig field name."""
    key = key.replace("-", "_")
    return {"train": "training_file", "validation": "validation_file"}.get(key, key)


def build_config(data: dict[str, Any], source: str = "options") -> TrainConfig:
    """Validate `data` into a TrainConfig; errors name the source and each offending field."""
    try:
        return TrainConfig(**data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise TrainConfigError(f"{source}: invalid training config: {problems}") from e
