"""A tiny random model lively enough that greedy replies differ per prompt (tiny-random answers newlines)."""

from __future__ import annotations

import pytest
import torch

from tunesmith.models import build_tiny_model, load_smollm2_tokenizer


SCALE = 6.0


def lively_model(seed: int = 0):
    tokenizer = load_smollm2_tokenizer()
    model = build_tiny_model(tokenizer, seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".layers." in name and p.dim() == 2:
                p.mul_(SCALE)  # attention and MLP outweigh the residual: replies depend on the whole prompt
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def lively():
    return lively_model()


def text_prompts(tokenizer, texts):
    return [tokenizer(t)["input_ids"] for t in texts]


TEXTS = ["The quick brown fox", "Once upon a time, in a land far away", "1 2 3 4", "Paris is the capital of",
         "def main():", "SELECT name FROM users WHERE", "a"]
