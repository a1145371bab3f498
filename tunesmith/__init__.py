"""tunesmith: a local fine-tuning studio — decide, prepare data, baseline, fine-tune, evaluate, deploy, cost."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def train(**options: Any) -> Any:
    """Python spelling of `tunesmith train`: the same options as the CLI flags and the YAML config."""
    from tunesmith.training.config import TrainConfig
    from tunesmith.training.sft import train as run_training

    return run_training(TrainConfig(**options))
