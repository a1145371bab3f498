"""tunesmith: a local fine-tuning studio — decide, prepare data, baseline, fine-tune, evaluate, deploy, cost."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def train(provider: str | None = None, **options: Any) -> Any:
    """Python spelling of `tunesmith train`: the same options as the CLI flags and the YAML config.
    `provider` (a configured provider's name) trains a provider model in that provider's cloud."""
    from tunesmith.train_config import TrainConfig
    from tunesmith.training.launch import start

    return start(TrainConfig(**options), provider=provider)
