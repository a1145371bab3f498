"""Training test fixtures: small chat files and tiny random models of every family, saved like real ones."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "pink", "brown", "grey", "cyan"]


def write_chat_file(path: Path, n: int, *, seed: int = 1, weight0_first_answer: bool = False) -> Path:
    """`n` distinct addition examples (the validator rejects duplicates and files under 10 examples)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            messages = [
                {"role": "system", "content": "You add numbers."},
                {"role": "user", "content": f"What is {a} plus {b}? Example {i}, colour {COLOURS[i % 12]}."},
                {"role": "assistant", "content": str(a + b)},
            ]
            if weight0_first_answer:
                messages[2]["weight"] = 0
                messages += [{"role": "user", "content": "And doubled?"}, {"role": "assistant", "content": str(2 * (a + b))}]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    return write_chat_file(tmp_path / "train.jsonl", 20)


def family_tokenizer(family: str):
    """SmolLM2's vocabulary with the family's special tokens and real chat template."""
    from tunesmith.chat_templates import apply_family_template
    from tunesmith.models import load_smollm2_tokenizer

    return apply_family_template(load_smollm2_tokenizer(), family)


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory):
    """A function family -> folder holding a tiny random model of that architecture and its tokenizer."""
    from tunesmith.models import build_tiny_model

    made: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in made:
            tokenizer = family_tokenizer(family)
            model = build_tiny_model(tokenizer, family="phi3" if family == "phi3" else "llama")
            out = tmp_path_factory.mktemp(f"tiny-{family}")
            model.save_pretrained(str(out), safe_serialization=True)
            tokenizer.save_pretrained(str(out))
            made[family] = out
        return made[family]

    return build
