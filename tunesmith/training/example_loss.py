"""The loss of every training example, so a user can see which lines of the training file hurt.

The trainer already computes a cross-entropy per trained token (collate.py knows which example each one
belongs to); this module adds them up per example over an epoch, at no extra forward pass, and writes
`example_losses.csv` in the run directory at every epoch end:

    epoch,line,mean_loss,trained_tokens        (line: 1-based, as the data validator numbers lines)

An example whose loss stays far above its peers' after training is usually mislabelled: `outliers()` ranks
the last epoch by mean loss and scores each example with a robust z-score (median and MAD, which a few bad
examples cannot drag along the way a mean and standard deviation would).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunesmith.paths import atomic_write_text
from tunesmith.training.distributed import World, sum_across

FILE_NAME = "example_losses.csv"
COLUMNS = ["epoch", "line", "mean_loss", "trained_tokens"]
# Iglewicz & Hoaglin's cut-off for the modified z-score 0.6745 * (x - median) / MAD: above it, an outlier.
Z_THRESHOLD = 3.5
# ...and not learned: below this mean loss per token (nats) an example's answer is already the likely one
MIN_OUTLIER_LOSS = 1.0


class EpochLosses:
    """Summed loss and trained-token count per example for the epoch in progress, indexed like data.train.

    Under torch.distributed each rank adds only the examples it trained; `reduced()` sums the ranks (every
    example is trained by exactly one rank per epoch, so the sum is each example's own figure)."""

    def __init__(self, n_examples: int) -> None:
        self.loss_sum = torch.zeros(n_examples, dtype=torch.float64)
        self.tokens = torch.zeros(n_examples, dtype=torch.int64)

    def add(self, example_indices: list[int], target_example: torch.Tensor, token_losses: torch.Tensor) -> None:
        """Add one micro-batch: token_losses[k] belongs to example example_indices[target_example[k]]."""
        index = torch.tensor(example_indices, dtype=torch.long)[target_example.cpu()]
        self.loss_sum.index_add_(0, index, token_losses.detach().to("cpu", torch.float64))
        self.tokens.index_add_(0, index, torch.ones_like(index))

    def reduced(self, world: World, device: torch.device) -> "EpochLosses":
        """Every rank's contributions summed (collective: every rank calls it)."""
        if not world.distributed:
            return self
        n = len(self.tokens)
        summed = sum_across(self.loss_sum.tolist() + self.tokens.tolist(), world, device)
        out = EpochLosses(n)
        out.loss_sum = torch.tensor(summed[:n], dtype=torch.float64)
        out.tokens = torch.tensor([round(t) for t in summed[n:]], dtype=torch.int64)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"loss_sum": self.loss_sum.clone(), "tokens": self.tokens.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["tokens"].shape != self.tokens.shape:
            raise ValueError(f"checkpoint holds losses for {len(state['tokens'])} examples, the data has "
                             f"{len(self.tokens)}")
        self.loss_sum = state["loss_sum"].to(torch.float64).clone()
        self.tokens = state["tokens"].to(torch.int64).clone()

    def rows(self, epoch: int, lines: list[int]) -> list[dict[str, Any]]:
        """The epoch's CSV rows, in file order; examples this epoch never reached are left out."""
        return [{"epoch": epoch, "line": line, "mean_loss": float(total) / int(n), "trained_tokens": int(n)}
                for line, total, n in sorted(zip(lines, self.loss_sum.tolist(), self.tokens.tolist()))
                if n > 0]


def write_epoch(run_dir: Path, epoch: int, rows: list[dict[str, Any]]) -> None:
    """Replace the file with its earlier epochs' rows plus this epoch's, atomically. Rows of this epoch or a
    later one already there (a run resumed from a checkpoint before them) are dropped, never duplicated."""
    kept = [r for r in read_rows(run_dir) if r["epoch"] < epoch]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in kept + rows:
        writer.writerow({**row, "mean_loss": f"{row['mean_loss']:.7g}"})
    atomic_write_text(Path(run_dir) / FILE_NAME, out.getvalue())


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / FILE_NAME
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{"epoch": int(r["epoch"]), "line": int(r["line"]), "mean_loss": float(r["mean_loss"]),
                 "trained_tokens": int(r["trained_tokens"])} for r in csv.DictReader(f)]


@dataclass
class ExampleLoss:
    line: int
    mean_loss: float
    z: float  # robust z-score among the epoch's examples; above Z_THRESHOLD: an outlier
    trained_tokens: int
    epoch: int


def highest_losses(run_dir: Path, top: int = 10) -> list[ExampleLoss]:
    """The last recorded epoch's `top` examples by mean loss, highest first, each with its robust z-score."""
    rows = read_rows(run_dir)
    if not rows:
        return []
    last = max(r["epoch"] for r in rows)
    rows = [r for r in rows if r["epoch"] == last]
    scores = robust_z_scores([r["mean_loss"] for r in rows])
    ranked = sorted(zip(rows, scores), key=lambda pair: (-pair[0]["mean_loss"], pair[0]["line"]))
    return [ExampleLoss(r["line"], r["mean_loss"], z, r["trained_tokens"], last) for r, z in ranked[:top]]


def outliers(run_dir: Path, top: int = 10, threshold: float = Z_THRESHOLD) -> list[ExampleLoss]:
    """The last epoch's highest-loss examples whose robust z-score exceeds `threshold` (at most `top`) and that
    the model has not learned (mean loss at least MIN_OUTLIER_LOSS).

    The floor matters once training converges: with most losses near 0.001 the MAD is tiny, and an example at
    0.02 would score a large z while being learned perfectly well.
    """
    return [e for e in highest_losses(run_dir, top) if is_outlier(e, threshold)]


def is_outlier(example: "ExampleLoss", threshold: float = Z_THRESHOLD) -> bool:
    return example.z > threshold and example.mean_loss >= MIN_OUTLIER_LOSS


def robust_z_scores(values: list[float]) -> list[float]:
    """0.6745 * (x - median) / MAD per value. When more than half the values are equal (MAD 0), the mean
    absolute deviation stands in (scaled to match a normal's standard deviation); all equal: all 0."""
    if len(values) < 3:
        return [0.0] * len(values)  # too few peers to call any one unusual
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad > 0:
        return [0.6745 * (v - median) / mad for v in values]
    mean_ad = statistics.fmean(abs(v - median) for v in values)
    if mean_ad == 0:
        return [0.0] * len(values)
    return [(v - median) / (1.2533 * mean_ad) for v in values]


def outlier_message(found: list[ExampleLoss]) -> str:
    """The run's closing event naming the lines to check."""
    lines = ", ".join(str(e.line) for e in found)
    if len(found) == 1:
        return f"1 training example has unusually high loss (line {lines}): check it for a labelling error"
    return (f"{len(found)} training examples have unusually high loss (lines {lines}): "
            "check them for labelling errors")


def example_texts(training_file: Path, lines: list[int], limit: int = 300) -> dict[int, dict[str, str]]:
    """{line: {"user", "assistant"}} for the given lines of a training file: its last user turn and last
    assistant turn, each cut to `limit` characters. Lines the file no longer has are left out."""
    from tunesmith.data.formats import iter_numbered_conversations

    wanted = set(lines)
    texts: dict[int, dict[str, str]] = {}
    for line, conversation in iter_numbered_conversations(training_file):
        if line in wanted:
            texts[line] = {"user": _cut(_last_text(conversation.messages, "user"), limit),
                           "assistant": _cut(_last_text(conversation.messages, "assistant"), limit)}
            if len(texts) == len(wanted):
                break
    return texts


def _last_text(messages: list[Any], role: str) -> str:
    for message in reversed(messages):
        if message.role == role:
            if message.content:
                return message.content
            return " ".join(f"{call.name}({call.arguments})" for call in message.tool_calls)
    return ""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
