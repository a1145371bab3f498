"""`"auto"` hyperparameters, derived from the data the way OpenAI's fine-tuning API does, and their limits.

TrainConfig (CLI, YAML, `tunesmith.train`) and the jobs API check values against the same LIMITS.
"""

from __future__ import annotations

import math
from typing import Any

# The ranges OpenAI's fine-tuning API accepts; "auto" always passes.
LIMITS: dict[str, tuple[int, int]] = {"batch_size": (1, 256), "n_epochs": (1, 50)}


# DPO's beta: OpenAI's API spec takes "auto" or a number > 0 and <= 2; "auto" is TRL's default, 0.1.
BETA_RANGE = (0.0, 2.0)
DEFAULT_BETA = 0.1


def limit_error(name: str, value: Any) -> str | None:
    """Why `value` is not a valid `name` ("auto", a whole number within LIMITS, a multiplier > 0, a beta in
    (0, 2]); None if it is."""
    if value == "auto":
        return None
    if name == "learning_rate_multiplier":
        return None if float(value) > 0 else "must be 'auto' or a number > 0"
    if name == "beta":
        lo, hi = BETA_RANGE
        return None if math.isfinite(float(value)) and lo < float(value) <= hi else (
            f"must be 'auto' or a number > {lo:g} and <= {hi:g}")
    lo, hi = LIMITS[name]
    return None if lo <= int(value) <= hi else f"must be 'auto' or a whole number between {lo} and {hi}"

# OpenAI's published heuristic (cookbook "Chat_finetuning_data_prep"): aim at ~3 epochs, but see at least
# 100 and at most 25,000 examples in total.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def default_n_epochs(n_examples: int) -> int:
    """Epochs OpenAI would choose for `n_examples` training examples."""
    if n_examples <= 0:
        raise ValueError("no training examples")
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


# OpenAI's "auto" batch size is about 0.2% of the training examples, between 1 and 256.
BATCH_SIZE_FRACTION = 0.002
MAX_AUTO_BATCH_SIZE = 256

# The learning rate is multiplier × a base rate per method. The bases are chosen so that OpenAI's usual
# multipliers (0.02–0.2; "auto" picks 0.05–0.2 by batch size) land on the rates the open-source trainers
# default to: LoRA ~1e-4–4e-4, full fine-tuning ~1e-5–4e-5.
BASE_LEARNING_RATE = {"lora": 2e-3, "qlora": 2e-3, "full": 2e-4}


def default_batch_size(n_examples: int) -> int:
    """Examples per optimizer step OpenAI would choose for `n_examples` training examples."""
    return max(1, min(MAX_AUTO_BATCH_SIZE, round(n_examples * BATCH_SIZE_FRACTION)))


def default_learning_rate_multiplier(batch_size: int) -> float:
    """Larger batches average away more noise and take a larger rate, as OpenAI's "auto" does."""
    if batch_size < 8:
        return 0.05
    if batch_size < 32:
        return 0.1
    return 0.2


def learning_rate(method: str, multiplier: float) -> float:
    return BASE_LEARNING_RATE[method] * multiplier


def resolve_beta(beta: Any) -> float:
    return DEFAULT_BETA if beta == "auto" else float(beta)
