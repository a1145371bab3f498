"""Shared test setup: offline, one thread, a private cache per session (the SmolLM2 conversion is reused)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["COLUMNS"] = "200"  # rich wraps at the terminal width; tests read whole lines

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """The tiny-random model and SmolLM2 tokenizer, loaded once per session."""
    from tunesmith.models import load_model

    return load_model("tiny-random")
