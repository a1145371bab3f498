"""tunesmith: a local fine-tuning studio — decide, prepare data, baseline, fine-tune, evaluate, deploy, cost."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def train(provider: str | None = None, **options: Any) -> Any:
    """Python spelling of `tunesmith train`: the same options as the CLI flags and the YAML config.
    `provider` (a configured provider's name) trains a provider model in that provider's cloud."""
    from tunesmith.train_config import TrainConfig

    if provider is not None:
        from tunesmith.providers.remote_train import train_remote

        return train_remote(TrainConfig(**options), provider)
    from tunesmith.training.sft import train as run_training

    return run_training(TrainConfig(**options))
