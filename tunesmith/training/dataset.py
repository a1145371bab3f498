"""Training data, ready for the loop: validated, read, rendered through the chat template, checked.

Over-long examples (the stated policy): longer than the model's context → a validation error (the file
never trains); longer than `max_length` but within the context → cut at `max_length` with one warning
naming how many (or refused with `truncation: reject`); an example left with no trained token is dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.train_config import TrainConfig
from tunesmith.training.render import RenderError, TokenizedExample, loss_fraction, render_example

DEFAULT_MAX_LENGTH = 4096


class DataValidationError(ValueError):
    """The data validator found errors: the run never starts."""


@dataclass
class PreparedData:
    train: list[TokenizedExample]
    valid: list[TokenizedExample]
    fingerprints: dict[str, str]  # file name -> sha256
    max_length: int
    n_truncated: int = 0
    n_dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    train_lines: list[int] = field(default_factory=list)  # train[i] came from this line of the training file

    def summary(self) -> dict[str, Any]:
        """What data.json records."""
        return {
            "training_file": {"sha256": self.fingerprints.get("train"), "n_examples": len(self.train),
                              "n_tokens": sum(len(e) for e in self.train),
                              "n_trained_tokens": sum(e.n_trained for e in self.train)},
            "validation_file": {"sha256": self.fingerprints.get("valid"), "n_examples": len(self.valid),
                                "n_tokens": sum(len(e) for e in self.valid)} if self.valid else None,
            "max_length": self.max_length,
            "loss_fraction": round(loss_fraction(self.train), 4),
            "n_truncated": self.n_truncated,
            "n_dropped": self.n_dropped,
            "warnings": self.warnings,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_inputs(config: TrainConfig, tokenizer: Any, context_length: int) -> None:
    """Run the data validator over the training (and validation) file; raise with every error found."""
    from tunesmith.data.validate import validate_file

    for path in filter(None, (config.training_file, config.validation_file)):
        if not Path(path).is_file():
            raise DataValidationError(f"{path}: file not found")
    report = validate_file(
        config.training_file, model=config.model, validation=config.validation_file, tokenizer=tokenizer,
        context_length=context_length, method=config.method,
    )
    if report.ok:
        return
    shown = report.errors[:20]
    lines = [
        f"  {getattr(e, 'file', None) or config.training_file}:{e.line or '-'} [{e.code}] {e.message}" for e in shown
    ]
    more = f"\n  … and {len(report.errors) - len(shown)} more" if len(report.errors) > len(shown) else ""
    raise DataValidationError(
        f"{config.training_file}: {len(report.errors)} data error(s); training did not start "
        "(`tunesmith data validate` shows them all):\n" + "\n".join(lines) + more
    )


def prepare_data(config: TrainConfig, tokenizer: Any, context_length: int) -> PreparedData:
    """Read and render both files; refuse data where no token, or every token, would carry loss."""
    max_length = min(config.max_length or DEFAULT_MAX_LENGTH, context_length)
    prepared = PreparedData([], [], {"train": file_sha256(config.training_file)}, max_length)
    prepared.train, prepared.train_lines = _render_file(config.training_file, tokenizer, max_length, config, prepared)
    if config.validation_file is not None:
        prepared.fingerprints["valid"] = file_sha256(config.validation_file)
        prepared.valid, _ = _render_file(config.validation_file, tokenizer, max_length, config, prepared)
    if prepared.n_truncated:
        prepared.warnings.append(
            f"{prepared.n_truncated} example(s) longer than max_length={max_length} tokens were cut at "
            f"{max_length}; raise --max-length (up to the model's {context_length}) to keep them whole"
        )
    if prepared.n_dropped:
        prepared.warnings.append(f"{prepared.n_dropped} example(s) had no trained token left and were skipped")
    _check_loss_mask(config.training_file, prepared.train)
    return prepared


def _render_file(path: Path, tokenizer: Any, max_length: int, config: TrainConfig,
                 prepared: PreparedData) -> tuple[list[TokenizedExample], list[int]]:
    """The file's trainable examples, and the line (as the data validator numbers them) each came from."""
    from tunesmith.data.formats import iter_numbered_conversations

    examples = []
    lines = []
    for number, conversation in iter_numbered_conversations(path):
        try:
            example = render_example(conversation, tokenizer, max_length)
        except RenderError as e:
            raise DataValidationError(f"{path}: example {number}: {e}") from e
        if example.truncated:
            if config.truncation == "reject":
                raise DataValidationError(
                    f"{path}: example {number} is longer than max_length={max_length} tokens "
                    "(truncation: reject); shorten it or raise --max-length"
                )
            prepared.n_truncated += 1
        if example.n_trained == 0:
            prepared.n_dropped += 1
            continue
        examples.append(example)
        lines.append(number)
    return examples, lines


def _check_loss_mask(path: Path, examples: list[TokenizedExample]) -> None:
    fraction = loss_fraction(examples)
    if not examples or fraction == 0.0:
        raise DataValidationError(
            f"{path}: no token carries loss (every assistant turn has weight 0, or the chat template hides "
            "them); nothing to train. Check with `tunesmith train --dry-run`"
        )
    if fraction >= 1.0:
        raise DataValidationError(
            f"{path}: every token carries loss, so prompts are being trained as answers; the loss mask is "
            "wrong for this chat template. Check with `tunesmith train --dry-run`"
        )
