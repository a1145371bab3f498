"""Make a loaded model trainable: LoRA (per-family target modules), QLoRA, or full fine-tuning."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import torch

from tunesmith.train_config import TrainConfig, TrainConfigError

# Every linear layer of the decoder blocks, by architecture (config.model_type). Phi-3 fuses q/k/v and
# gate/up into single projections, so names hard-coded for Llama would silently train nothing but o/down.
LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


def lora_target_modules(model: Any) -> list[str] | str:
    """The LoRA targets for this architecture; PEFT's "all-linear" (every linear but the head) otherwise."""
    return LORA_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")


def check_method_available(method: str) -> None:
    if method != "qlora":
        return
    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (`pip install bitsandbytes`)")
    if missing:
        raise TrainConfigError(
            f"--method qlora needs {' and '.join(missing)}; on this machine use --method lora (same adapter "
            "format, more memory) or --method full"
        )


def load_quantized_base(source: Any) -> Any:
    """A 4-bit NF4 base model for QLoRA (CUDA only), prepared for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(source), quantization_config=quant, dtype=torch.bfloat16, device_map={"": 0}, trust_remote_code=False
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def make_trainable(model: Any, config: TrainConfig, base_ref: str) -> Any:
    """Attach (or keep training) a LoRA adapter, or unfreeze everything for full fine-tuning."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if config.weights == "full":
        if isinstance(model, PeftModel):  # continuing from an adapter: bake it in, then train every weight
            model = model.merge_and_unload()
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if isinstance(model, PeftModel):  # continued fine-tuning of an earlier run's adapter
        for name, p in model.named_parameters():
            p.requires_grad_("lora_" in name)
        model.peft_config["default"].inference_mode = False
        return model
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules or lora_target_modules(model),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # PEFT probes a transformers attribute deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        model = get_peft_model(model, lora)
    model.peft_config["default"].base_model_name_or_path = base_ref
    return model


def causal_lm(model: Any) -> Any:
    """The transformers *ForCausalLM under a PeftModel (or the model itself)."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def decoder_and_head(model: Any) -> tuple[Any, Any]:
    """(the decoder stack returning hidden states, the LM head): run apart so the head sees trained rows only."""
    lm = causal_lm(model)
    return lm.get_decoder(), lm.get_output_embeddings()


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
