"""`"auto"` hyperparameters, derived from the data the way OpenAI's fine-tuning API does."""

from __future__ import annotations

import math

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
