"""Direct Preference Optimization (Rafailov et al. 2023), as OpenAI's fine-tuning API offers it: the recipe.

    result = train(TrainConfig(model="runs/my-sft-run", train="pairs.jsonl", method="dpo", beta=0.1))

The same set-up, checkpoints, schedule and run directory as `sft.py`; what differs is the step. Each pair is
the prompt with its preferred and its non-preferred output, rendered with the same loss mask as SFT (only
the output turns carry log-probabilities), packed padding-free. The loss is DPO's sigmoid loss on
beta * (policy - reference) log-ratios; results.csv holds TRL's names for its metrics (rewards/chosen, …).

The reference is the model as it was loaded, before any update: the frozen base, or the SFT run continued
from. Its log-probabilities are computed once, before the first step, and kept in the run directory, so no
second copy of the weights is ever held (with a fresh LoRA adapter, under peft's `disable_adapter()`; with
full fine-tuning the weights change from the first step on, so they must be computed beforehand) and a
resume uses the very same ones. One process only (no torchrun).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from tunesmith.artifacts.run_dir import (
    DPO_RESULTS_COLUMNS, EventSink, RunFiles, RunResult, StopSignal, new_run_dir, plot_metrics,
    read_reference_logps, saved_config, write_json,
)
from tunesmith.hparams import resolve_beta
from tunesmith.train_config import TrainConfig
from tunesmith.training.adapters import check_method_available, count_parameters, decoder_and_head, make_trainable
from tunesmith.training.checkpoint import Progress, check_same_data, restore_checkpoint, save_checkpoint, save_final
from tunesmith.training.collate import MicroBatch, collate_step
from tunesmith.training.dataset import DataValidationError, file_sha256, validate_inputs
from tunesmith.training.distributed import world_from_env
from tunesmith.training.render import RenderError, TokenizedExample, render_example
from tunesmith.training.sft import Hyperparameters, _lr_factor, epoch_order, event_sink, guarded, load_base
from tunesmith.training.step import mixed_precision, training_dtype

Pair = tuple[TokenizedExample, TokenizedExample]  # (prompt + preferred, prompt + non-preferred)


# --- the loss ------------------------------------------------------------------------------------------------


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair losses, chosen rewards, rejected rewards) from summed sequence log-probabilities.
    A reward is beta x the log-ratio of policy to reference; the loss is -log sigmoid(chosen - rejected)."""
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    return -F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach()


def sequence_logps(decoder: Any, head: Any, batch: MicroBatch, n_examples: int) -> torch.Tensor:
    """Each example's summed log-probability of its trained tokens (its output turns), from one packed
    micro-batch; the LM head runs at trained positions only, as in `step.losses_at_targets`."""
    hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.target_index)
    logps = F.log_softmax(head(hidden).float(), dim=-1).gather(1, batch.target_ids[:, None]).squeeze(1)
    return torch.zeros(n_examples, device=logps.device).index_add(0, batch.target_example, logps)


def pair_logps(decoder: Any, head: Any, pairs: list[Pair], micro_batch_tokens: int, pad_id: int,
               device: torch.device, precision: Callable[[], Any] = contextlib.nullcontext) -> torch.Tensor:
    """[len(pairs), 2]: (chosen, rejected) summed log-probabilities; differentiable."""
    examples = [e for pair in pairs for e in pair]
    total = torch.zeros(len(examples), device=device)
    for mb in collate_step(examples, micro_batch_tokens, pad_id):
        with precision():
            total = total + sequence_logps(decoder, head, mb.to(device), len(examples))
    return total.view(-1, 2)


def pair_groups(indices: list[int], pairs: list[Pair], micro_batch_tokens: int) -> list[list[int]]:
    """The step's pairs in groups of at most `micro_batch_tokens` tokens (a longer pair alone): a pair's two
    sequences always share one backward, the loss needing both."""
    groups: list[list[int]] = []
    size = 0
    for i in indices:
        n = len(pairs[i][0]) + len(pairs[i][1])
        if groups and size + n <= micro_batch_tokens:
            groups[-1].append(i)
            size += n
        else:
            groups.append([i])
            size = n
    return groups


# --- data ------------------------------------------------------------------------------------------------------


@dataclass
class PreferenceData:
    train: list[Pair]
    valid: list[Pair]
    fingerprints: dict[str, str]
    max_length: int
    n_truncated: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What data.json records."""
        return {"training_file": {"sha256": self.fingerprints.get("train"), "n_pairs": len(self.train),
                                  "n_tokens": sum(len(c) + len(r) for c, r in self.train)},
                "validation_file": {"sha256": self.fingerprints.get("valid"), "n_pairs": len(self.valid)}
                if self.valid else None,
                "max_length": self.max_length, "n_truncated": self.n_truncated, "warnings": self.warnings}


def prepare_pairs(config: TrainConfig, tokenizer: Any, context_length: int) -> PreferenceData:
    """Both files' pairs rendered through the chat template; a pair with an output left untrained is refused."""
    from tunesmith.data.preference import iter_numbered_pairs
    from tunesmith.training.dataset import DEFAULT_MAX_LENGTH

    max_length = min(config.max_length or DEFAULT_MAX_LENGTH, context_length)
    data = PreferenceData([], [], {"train": file_sha256(config.training_file)}, max_length)
    for path, into in ((config.training_file, data.train), (config.validation_file, data.valid)):
        if path is None:
            continue
        data.fingerprints["valid" if into is data.valid else "train"] = file_sha256(path)
        for line, pair in iter_numbered_pairs(path):
            try:
                rendered = (render_example(pair.chosen, tokenizer, max_length),
                            render_example(pair.rejected, tokenizer, max_length))
            except RenderError as e:
                raise DataValidationError(f"{path}: line {line}: {e}") from e
            if any(e.n_trained == 0 for e in rendered):
                raise DataValidationError(f"{path}: line {line}: an output has no trained token left (cut off at "
                                          f"max_length={max_length}?)")
            data.n_truncated += any(e.truncated for e in rendered)
            into.append(rendered)
    if data.n_truncated:
        data.warnings.append(f"{data.n_truncated} pair(s) longer than max_length={max_length} tokens were cut")
    return data


# --- entry points ----------------------------------------------------------------------------------------------


def plan(config: TrainConfig) -> Any:
    """`train --dry-run`: sft.RunPlan whose examples are each pair's two sequences in turn (preferred first),
    so the loss-mask preview shows one pair; hyperparameters are resolved on the number of pairs."""
    from tunesmith.models import load_model
    from tunesmith.training.dataset import PreparedData
    from tunesmith.training.sft import RunPlan

    loaded = load_model(config.model, load_weights=False)
    validate_inputs(config, loaded.tokenizer, loaded.context_length)
    data = prepare_pairs(config, loaded.tokenizer, loaded.context_length)
    hp = Hyperparameters.resolve(config, len(data.train))
    flat = PreparedData([e for p in data.train for e in p], [e for p in data.valid for e in p], data.fingerprints,
                        data.max_length, data.n_truncated, warnings=data.warnings)
    return RunPlan(flat, hp, hp.n_epochs * math.ceil(len(data.train) / hp.batch_size), loaded.tokenizer)


def train(config: TrainConfig, *, should_stop: StopSignal | None = None,
          on_event: EventSink | None = None) -> RunResult:
    """DPO as `config` says, in a new run directory."""
    run = RunFiles(Path(config.output) if config.output else new_run_dir(config.suffix), DPO_RESULTS_COLUMNS)
    if (run.root / "state.json").is_file():
        raise FileExistsError(f"{run.root} already holds a run; continue it with `tunesmith train --resume {run.root}`")
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.root / "config.json", config.to_json_dict())
    run.write_state("queued", step=0, total_steps=None, epoch=0, trained_tokens=0)
    return _run(run, config, should_stop, on_event, resuming=False)


def resume(run_dir: Path | str, *, should_stop: StopSignal | None = None,
           on_event: EventSink | None = None) -> RunResult:
    """Continue a DPO run from its last checkpoint, with the reference log-probabilities it started with."""
    run = RunFiles(Path(run_dir), DPO_RESULTS_COLUMNS)
    if run.read_state().get("status") == "succeeded":
        raise ValueError(f"{run.root} already finished; to train further start a new run with --model {run.root}")
    return _run(run, saved_config(run.root), should_stop, on_event, resuming=True)


def _run(run: RunFiles, config: TrainConfig, should_stop: StopSignal | None, on_event: EventSink | None,
         resuming: bool) -> RunResult:
    emit = event_sink(run, on_event)
    return guarded(run, emit, lambda: _train_loop(run, config, emit, should_stop, resuming))


@dataclass
class _Setup:
    model: Any
    tokenizer: Any
    base_ref: str
    decoder: Any
    head: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    precision: Callable[[], Any]
    data: PreferenceData
    reference: dict[str, torch.Tensor]  # "train" / "valid": [n_pairs, 2]
    hp: Hyperparameters
    beta: float
    steps_per_epoch: int
    total_steps: int


def _set_up(run: RunFiles, config: TrainConfig, emit: Callable[..., None]) -> _Setup:
    """Model, pairs, reference log-probabilities, optimizer and schedule: everything up to the first step."""
    if world_from_env().distributed:
        raise ValueError("DPO trains in one process; run it without torchrun")
    weights = config.model_copy(update={"method": config.weights})  # what load_base / make_trainable read
    check_method_available(config.weights)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if config.device == "auto" else config.device))
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    dtype = training_dtype(config, device)
    loaded, base_ref = load_base(weights, device, dtype)
    validate_inputs(config, loaded.tokenizer, loaded.context_length)
    data = prepare_pairs(config, loaded.tokenizer, loaded.context_length)
    for warning in data.warnings:
        emit(warning, level="warn")
    hp = Hyperparameters.resolve(config, len(data.train))
    steps_per_epoch = math.ceil(len(data.train) / hp.batch_size)
    continuing = loaded.adapter_dir is not None
    model = make_trainable(loaded.model, weights, base_ref)
    if config.weights != "full" and dtype != torch.float32:
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    decoder, head = decoder_and_head(model)
    precision = mixed_precision(model, dtype, device)
    reference = _reference(run, model, decoder, head, data, config, loaded.tokenizer.pad_token_id, device,
                           precision, base_only=not continuing and config.weights != "full")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=config.weight_decay)
    total_steps = hp.n_epochs * steps_per_epoch
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total_steps))
    return _Setup(model, loaded.tokenizer, base_ref, decoder, head, optimizer, scheduler, device, precision, data,
                  reference, hp, resolve_beta(config.beta), steps_per_epoch, total_steps)


@torch.no_grad()
def reference_logps(model: Any, decoder: Any, head: Any, pairs: list[Pair], micro_batch_tokens: int, pad_id: int,
                    device: torch.device, precision: Callable[[], Any] = contextlib.nullcontext, *,
                    base_only: bool = False) -> torch.Tensor:
    """[n, 2] reference log-probabilities, in eval mode (no dropout). `base_only`: with the LoRA adapter
    switched off (peft's disable_adapter), i.e. the frozen base itself, whatever the adapter holds."""
    was_training = model.training
    model.eval()
    off = model.disable_adapter() if base_only and hasattr(model, "disable_adapter") else contextlib.nullcontext()
    out = []
    with off:
        for k in range(0, len(pairs), 16):  # bounded memory on large files
            out.append(pair_logps(decoder, head, pairs[k:k + 16], micro_batch_tokens, pad_id, device, precision))
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 2, device=device)


def _reference(run: RunFiles, model: Any, decoder: Any, head: Any, data: PreferenceData, config: TrainConfig,
               pad_id: int, device: torch.device, precision: Callable[[], Any], base_only: bool) -> dict:
    """The run's reference log-probabilities: read back on a resume, computed (before any update) otherwise."""
    saved = read_reference_logps(run.root)
    if saved.get("train") is not None and len(saved["train"]) == len(data.train):
        return {k: torch.tensor(v, device=device).view(-1, 2) for k, v in saved.items()}
    reference = {name: reference_logps(model, decoder, head, pairs, config.micro_batch_tokens, pad_id, device,
                                       precision, base_only=base_only)
                 for name, pairs in (("train", data.train), ("valid", data.valid))}
    run.write_reference_logps({k: v.tolist() for k, v in reference.items()})
    return reference


# --- the loop --------------------------------------------------------------------------------------------------


def _train_loop(run: RunFiles, config: TrainConfig, emit: Callable[..., None], should_stop: StopSignal | None,
                resuming: bool) -> RunResult:
    s = _set_up(run, config, emit)
    progress = Progress()
    if resuming and (run.root / "data.json").is_file():
        check_same_data(run, s.data)
        progress = restore_checkpoint(run, s.model, s.optimizer, s.scheduler)
        run.truncate_results(progress.step)
        emit(f"Resumed from step {progress.step}", data={"step": progress.step})
    else:
        _record_start(run, config, s, emit)
    run.write_state("running", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens, error=None, started_at=int(time.time()),
                    started_step=progress.step)
    eval_steps = config.eval_steps or max(1, s.total_steps // 10)
    s.model.train()
    while progress.epoch < s.hp.n_epochs:
        order = epoch_order(len(s.data.train), config.seed, progress.epoch)
        epoch_done = False
        while not epoch_done:
            epoch_done = _step(run, config, s, progress, order, eval_steps, emit)
            if epoch_done:
                save_checkpoint(run, s.model, s.tokenizer, s.optimizer, s.scheduler, progress, config.save_total_limit)
                emit(f"Checkpoint saved at step {progress.step} (epoch {progress.epoch})",
                     data={"step": progress.step, "epoch": progress.epoch})
            stop = should_stop() if should_stop is not None else None
            if stop:
                return _stop(run, config, s, progress, stop, emit)
            run.write_state("running", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                            trained_tokens=progress.trained_tokens)
    output_dir = save_final(run, s.model, s.tokenizer, config, s.base_ref)
    plot_metrics(run)
    run.write_state("succeeded", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    emit("The job has successfully completed", data={"output": str(output_dir), "final": True})
    return RunResult(run.root, "succeeded", progress.step, s.total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None, output_dir)


def _record_start(run: RunFiles, config: TrainConfig, s: _Setup, emit: Callable[..., None]) -> None:
    trainable, total = count_parameters(s.model)
    write_json(run.root / "config.json", {
        **config.to_json_dict(), "n_epochs": s.hp.n_epochs, "batch_size": s.hp.batch_size,
        "learning_rate_multiplier": s.hp.learning_rate_multiplier, "learning_rate": s.hp.learning_rate,
        "beta": s.beta, "base_model": s.base_ref, "device": s.device.type, "trainable_parameters": trainable,
        "total_parameters": total, "world_size": 1,
    })
    write_json(run.root / "data.json", {
        **s.data.summary(), "trained_tokens_estimate": s.data.summary()["training_file"]["n_tokens"] * s.hp.n_epochs,
    })
    emit("Fine-tuning job started", data={"total_steps": s.total_steps, "n_epochs": s.hp.n_epochs,
                                          "batch_size": s.hp.batch_size, "learning_rate": s.hp.learning_rate,
                                          "beta": s.beta, "method": "dpo"})


def _step(run: RunFiles, config: TrainConfig, s: _Setup, progress: Progress, order: list[int], eval_steps: int,
          emit: Callable[..., None]) -> bool:
    """One optimizer step over the step's pairs and its results.csv row; True when it closed the epoch."""
    first = progress.step_in_epoch * s.hp.batch_size
    indices = order[first:first + s.hp.batch_size]
    pad_id = s.tokenizer.pad_token_id
    losses, chosen, rejected = [], [], []
    for group in pair_groups(indices, s.data.train, config.micro_batch_tokens):
        policy = pair_logps(s.decoder, s.head, [s.data.train[i] for i in group], config.micro_batch_tokens, pad_id,
                            s.device, s.precision)
        ref = s.reference["train"][group]
        loss, c, r = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], s.beta)
        (loss.sum() / len(indices)).backward()  # the mean over the step's pairs, however they were grouped
        losses.append(loss.detach())
        chosen.append(c)
        rejected.append(r)
    torch.nn.utils.clip_grad_norm_([p for p in s.model.parameters() if p.requires_grad], 1.0)
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    row = {"step": progress.step + 1, **reward_metrics(torch.cat(losses), torch.cat(chosen), torch.cat(rejected))}
    row["train_loss"] = row.pop("loss")
    if not math.isfinite(row["train_loss"]):
        raise ValueError(f"the DPO loss became {row['train_loss']} at step {progress.step + 1}; lower "
                         "learning_rate_multiplier or beta")
    progress.step += 1
    progress.step_in_epoch += 1
    progress.trained_tokens += sum(len(s.data.train[i][0]) + len(s.data.train[i][1]) for i in indices)
    epoch_done = progress.step_in_epoch == s.steps_per_epoch
    if epoch_done:
        progress.epoch += 1
        progress.step_in_epoch = 0
    if s.data.valid and (epoch_done or progress.step % eval_steps == 0):
        valid = evaluate_pairs(s, s.data.valid, s.reference["valid"], config.micro_batch_tokens)
        row.update({"valid_loss": valid["loss"], "valid_rewards/accuracies": valid["rewards/accuracies"],
                    "valid_rewards/margins": valid["rewards/margins"]})
    run.append_result(row)
    emit(f"Step {progress.step}/{s.total_steps}: training loss={row['train_loss']:.4f}, reward accuracy="
         f"{row['rewards/accuracies']:.2f}", type="metrics", data={**row, "total_steps": s.total_steps})
    progress.losses.append(row["train_loss"])
    return epoch_done


def reward_metrics(losses: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """TRL's DPO metrics over a set of pairs."""
    return {"loss": losses.mean().item(), "rewards/chosen": chosen.mean().item(),
            "rewards/rejected": rejected.mean().item(),
            "rewards/accuracies": (chosen > rejected).float().mean().item(),
            "rewards/margins": (chosen - rejected).mean().item()}


@torch.no_grad()
def evaluate_pairs(s: _Setup, pairs: list[Pair], reference: torch.Tensor, micro_batch_tokens: int) -> dict[str, float]:
    """The DPO metrics on held-out pairs (eval mode: no dropout)."""
    s.model.eval()
    policy = torch.cat([pair_logps(s.decoder, s.head, pairs[k:k + 16], micro_batch_tokens, s.tokenizer.pad_token_id,
                                   s.device, s.precision) for k in range(0, len(pairs), 16)])
    s.model.train()
    return reward_metrics(*dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], s.beta))


def _stop(run: RunFiles, config: TrainConfig, s: _Setup, progress: Progress, stop: Any,
          emit: Callable[..., None]) -> RunResult:
    status = "paused" if stop == "pause" else "cancelled"
    if not run.checkpoint_dir(progress.step).is_dir():
        save_checkpoint(run, s.model, s.tokenizer, s.optimizer, s.scheduler, progress, config.save_total_limit)
    plot_metrics(run)
    run.write_state(status, step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    emit(f"Fine-tuning job {status} at step {progress.step}; continue with `tunesmith train --resume {run.root}`",
         data={"step": progress.step})
    return RunResult(run.root, status, progress.step, s.total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None)
