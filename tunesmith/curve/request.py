"""What a curve is asked to do: the options of `tunesmith curve`, one dataclass the CLI and Python share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


@dataclass
class CurveRequest:
    model: str
    train: Path
    test: Path
    graders: list[str]
    output: Path
    grader_file: Path | None = None
    validation: Path | None = None
    fractions: list[float] = field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    models: list[str] = field(default_factory=list)
    budget_minutes: float | None = None
    baselines: list[Path] = field(default_factory=list)
    metric: str | None = None  # the grader the curve is drawn for (default: the first)
    n_epochs: int | str = "auto"
    recipe: dict[str, Any] = field(default_factory=dict)  # other TrainConfig fields (method, batch_size, …)
    seed: int = 0
    limit: int | None = None  # only the first N test items
    max_new_tokens: int = 256
    eval_batch_size: int = 16
    gpu_hour_price: float | None = None

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same curve (request.json): a resumed curve must match it. The budget and
        the baselines are not in it: they change which points run or what is drawn, not what a point is."""
        return {
            "model": self.model, "train": str(Path(self.train).resolve()), "test": str(Path(self.test).resolve()),
            "validation": str(Path(self.validation).resolve()) if self.validation else None,
            "graders": list(self.graders), "grader_file": str(self.grader_file) if self.grader_file else None,
            "fractions": list(self.fractions), "models": list(self.models), "n_epochs": self.n_epochs,
            "recipe": dict(sorted(self.recipe.items())), "seed": self.seed, "limit": self.limit,
            "max_new_tokens": self.max_new_tokens,
        }
