"""Turn one optimizer step's examples into micro-batches with (almost) no padding.

Examples are packed first-fit-decreasing into rows no longer than the step's longest example; position
ids restart at 0 for each example, which is how transformers (given no attention mask) builds a
block-diagonal causal mask, so packed examples never attend to each other, and no row is longer than the
longest example, so attention costs no more than unpacked. Rows of similar length are then stacked into
micro-batches of at most `micro_batch_tokens` tokens, only while that pads less than MAX_PADDING of the
micro-batch: on CPU a matmul over one row is already efficient, so a pad token saved is compute saved. A
shorter row's unused tail is one more "example" of pad tokens with its own positions and no loss.
Gradient accumulation runs over the micro-batches.

Only positions whose next token is trained become targets: the trainer runs the LM head and the loss there
and nowhere else. Each target also records which of the step's examples it belongs to, so the trainer can
add its per-token losses up per example (example_losses.csv) from the same forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunesmith.training.render import TokenizedExample


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [rows, row_length]
    position_ids: torch.Tensor  # [rows, row_length]; restart at 0 per packed example
    target_index: torch.Tensor  # [n_targets] flat indices into rows*row_length whose next token is trained
    target_ids: torch.Tensor  # [n_targets] the token to predict there
    n_tokens: int  # real (non-pad) tokens: the throughput figure
    target_example: torch.Tensor | None = None  # [n_targets] index, into collate_step's examples, of each target

    @property
    def n_targets(self) -> int:
        return int(self.target_ids.numel())

    def to(self, device: torch.device | str) -> "MicroBatch":
        return MicroBatch(
            self.input_ids.to(device), self.position_ids.to(device), self.target_index.to(device),
            self.target_ids.to(device), self.n_tokens,
            None if self.target_example is None else self.target_example.to(device),
        )


def pack_rows(lengths: list[int], row_length: int) -> list[list[int]]:
    """Example indices per row, first-fit decreasing; the order is deterministic for a given input."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(row_length - lengths[i])
    return rows


MAX_PADDING = 0.10  # share of a micro-batch's tokens that may be padding when stacking rows


def collate_step(examples: list[TokenizedExample], micro_batch_tokens: int, pad_id: int) -> list[MicroBatch]:
    """The micro-batches of one optimizer step (every example appears exactly once)."""
    row_length = max(len(e) for e in examples)
    rows = [[(i, examples[i]) for i in row] for row in pack_rows([len(e) for e in examples], row_length)]
    rows.sort(key=lambda row: -sum(len(e) for _, e in row))  # similar lengths side by side
    batches: list[list[list[tuple[int, TokenizedExample]]]] = []
    for row in rows:
        if batches and _fits(batches[-1] + [row], micro_batch_tokens):
            batches[-1].append(row)
        else:
            batches.append([row])
    return [_build_micro_batch(batch, max(sum(len(e) for _, e in r) for r in batch), pad_id) for batch in batches]


def _fits(rows: list[list[tuple[int, TokenizedExample]]], micro_batch_tokens: int) -> bool:
    filled = [sum(len(e) for _, e in row) for row in rows]
    total = len(rows) * max(filled)
    return total <= micro_batch_tokens and total - sum(filled) <= MAX_PADDING * total


def _build_micro_batch(rows: list[list[tuple[int, TokenizedExample]]], row_length: int, pad_id: int) -> MicroBatch:
    """`rows`: (index into the step's examples, example) per packed example."""
    input_ids = torch.full((len(rows), row_length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), row_length), dtype=torch.long)
    target_index: list[int] = []
    target_ids: list[int] = []
    target_example: list[int] = []
    n_tokens = 0
    for r, row in enumerate(rows):
        offset = 0
        for index, example in row:
            n = len(example)
            input_ids[r, offset : offset + n] = torch.tensor(example.ids)
            position_ids[r, offset : offset + n] = torch.arange(n)
            base = r * row_length + offset
            for t in range(n - 1):
                if example.trained[t + 1]:
                    target_index.append(base + t)
                    target_ids.append(example.ids[t + 1])
                    target_example.append(index)
            offset += n
            n_tokens += n
        position_ids[r, offset:] = torch.arange(row_length - offset)  # the pad tail: its own sequence
    return MicroBatch(
        input_ids, position_ids, torch.tensor(target_index, dtype=torch.long),
        torch.tensor(target_ids, dtype=torch.long), n_tokens, torch.tensor(target_example, dtype=torch.long),
    )
