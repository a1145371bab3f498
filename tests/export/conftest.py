"""Export fixtures: small trained runs (tiny random models of each family we train), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import family_tokenizer, write_chat_file


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A function family -> the run directory of a short LoRA run on a tiny random model of that family
    ("smollm2" is the catalog's tiny-random)."""
    from tunesmith.models import build_tiny_model
    from tunesmith.train_config import TrainConfig
    from tunesmith.training.sft import train

    made: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family in made:
            return made[family]
        root = tmp_path_factory.mktemp(f"run-{family}")
        model = "tiny-random"
        if family != "smollm2":
            tokenizer = family_tokenizer(family)
            base = root / "base"
            build_tiny_model(tokenizer, family="phi3" if family == "phi3" else "llama").save_pretrained(str(base))
            tokenizer.save_pretrained(str(base))
            model = str(base)
        data = write_chat_file(root / "train.jsonl", 10)
        valid = write_chat_file(root / "valid.jsonl", 10, seed=2)
        result = train(TrainConfig(model=model, train=data, validation=valid, n_epochs=1, batch_size=5,
                                   output=root / "run"))
        assert result.status == "succeeded"
        made[family] = result.run_dir
        return result.run_dir

    return build
