"""One training step and the validation loss: the loss only at trained positions, gradients normalised by the
step's trained-token count, and the precision each forward runs in.

Precision: LoRA trains fp32 adapter weights over a bf16 base wherever bf16 matmuls are native (CUDA, and
CPUs with AMX / AVX512-BF16, where they run several times faster than fp32); float32 otherwise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from tunesmith.train_config import TrainConfig
from tunesmith.training.collate import MicroBatch, collate_step
from tunesmith.training.distributed import World, sum_across
from tunesmith.training.render import TokenizedExample


def training_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 base weights where the hardware multiplies bf16 natively; float32 elsewhere. Full fine-tuning
    on CPU stays float32: its AdamW updates would be lost to bf16 rounding."""
    if config.dtype != "auto":
        return torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
    if device.type == "cuda":
        return torch.bfloat16
    if config.weights != "full" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matmuls run several times faster than float32 (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def mixed_precision(model: Any, dtype: torch.dtype,
                    device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The context each forward runs in. Over a bf16 base, autocast runs the fp32 LoRA matmuls in bf16 too,
    and PEFT's own cast of every LoRA input to fp32 (a copy per layer, ~20% of a CPU step) is switched off."""
    from peft import PeftModel
    from peft.helpers import disable_input_dtype_casting

    if dtype != torch.bfloat16 or not isinstance(model, PeftModel):
        return contextlib.nullcontext

    def context() -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        stack.enter_context(disable_input_dtype_casting(model))
        return stack

    return context


def loss_at_targets(decoder: Any, head: Any, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, correct predictions) over the batch's trained positions only."""
    loss, correct, _ = losses_at_targets(decoder, head, batch)
    return loss, correct


def losses_at_targets(decoder: Any, head: Any,
                      batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, correct predictions, each target's cross-entropy, detached) over the batch's
    trained positions only.

    The hidden states are gathered where a trained token comes next before the LM head: a prompt-heavy
    batch skips most of the vocabulary-sized matmul and never materialises its logits.
    """
    # attention_mask=None on purpose: transformers then reads the packed layout from position_ids.
    hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.target_index)
    logits = head(hidden).float()
    # cross_entropy is exactly log_softmax then nll_loss: the same summed loss, bit for bit, and the per-token
    # losses (example_losses.csv) come from the same log-probabilities at the cost of a gather.
    log_probs = F.log_softmax(logits, dim=-1)
    loss = F.nll_loss(log_probs, batch.target_ids, reduction="sum")
    token_losses = -log_probs.detach().gather(1, batch.target_ids[:, None]).squeeze(1)
    correct = (logits.detach().argmax(-1) == batch.target_ids).sum()
    return loss, correct, token_losses


class TargetLoss(torch.nn.Module):
    """losses_at_targets as one module: what DDP / FSDP wrap, so their hooks see every forward."""

    def __init__(self, decoder: Any, head: Any) -> None:
        super().__init__()
        self.decoder = decoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, target_index: torch.Tensor,
                target_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = MicroBatch(input_ids, position_ids, target_index, target_ids, 0)
        return losses_at_targets(self.decoder, self.head, batch)


def _forward(forward: Any, mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return forward(mb.input_ids, mb.position_ids, mb.target_index, mb.target_ids)


def train_step(forward: Any, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
               micro_batches: list[MicroBatch], device: torch.device,
               precision: Callable[[], Any] = contextlib.nullcontext, *, world: World = World(),
               weight: float = 1.0,
               on_token_losses: Callable[[MicroBatch, torch.Tensor], None] | None = None) -> tuple[float, float, int]:
    """One optimizer step over this rank's micro-batches; returns (mean loss per trained token, accuracy,
    tokens), each over the whole global batch. `weight` 0 runs the forward only to take part in the sync.
    `on_token_losses(micro_batch, losses)` receives each micro-batch's per-target losses (this rank's)."""
    local_targets = weight * sum(mb.n_targets for mb in micro_batches)
    n_targets = sum_across([local_targets], world, device)[0]
    # Divide by the whole step's trained tokens (every rank's), not the micro-batch's: accumulated gradients
    # then equal one big batch's however the examples were split. DDP / FSDP average over ranks: undo that.
    scale = weight * world.size / n_targets
    total_loss = 0.0
    total_correct = 0
    for k, mb in enumerate(micro_batches):
        mb = mb.to(device)
        last = k == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(forward, "no_sync") else forward.no_sync()
        with sync:  # DDP all-reduces once per step, on the last micro-batch
            with precision():
                loss, correct, token_losses = _forward(forward, mb)
            (loss * scale).backward()
        if on_token_losses is not None and weight:
            on_token_losses(mb, token_losses)
        total_loss += weight * loss.item()
        total_correct += int(weight * int(correct))
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    local_tokens = weight * sum(mb.n_tokens for mb in micro_batches)
    total_loss, total_correct, n_tokens = sum_across([total_loss, total_correct, local_tokens], world, device)
    return total_loss / n_targets, total_correct / n_targets, int(n_tokens)


@torch.no_grad()
def validation_loss(model: Any, forward: Any, examples: list[TokenizedExample], micro_batch_tokens: int,
             pad_id: int, device: torch.device,
             precision: Callable[[], Any] = contextlib.nullcontext) -> tuple[float, float]:
    """(loss per trained token, token accuracy) without keeping any logits beyond one micro-batch. Every rank
    evaluates the same examples (FSDP's forward needs all of them; the figures are then equal everywhere)."""
    model.eval()
    total_loss, total_correct, n_targets = 0.0, 0, 0
    chunk = 64  # examples per collate call: bounded memory on large validation sets
    for k in range(0, len(examples), chunk):
        for mb in collate_step(examples[k : k + chunk], micro_batch_tokens, pad_id):
            with precision():
                loss, correct, _ = _forward(forward, mb.to(device))
            total_loss += loss.item()
            total_correct += int(correct)
            n_targets += mb.n_targets
    model.train()
    return total_loss / n_targets, total_correct / n_targets
