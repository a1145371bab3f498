"""Supervised fine-tuning: one loop, readable top to bottom.

    result = train(TrainConfig(model="tiny-random", train="data.jsonl", n_epochs=2))
    result = resume(result.run_dir)          # after a crash, kill -9, Ctrl-C or pause

Set-up (model, data, optimizer), then for each step: pack the step's examples into padding-free
micro-batches, run the decoder, apply the LM head and the loss only at trained positions, accumulate
gradients normalised by the step's trained-token count, step the optimizer. A checkpoint closes every epoch
(and any stop), holding everything a resume needs: weights, optimizer, scheduler, data position, RNG.

Precision: LoRA trains fp32 adapter weights over a bf16 base wherever bf16 matmuls are native (CUDA, and
CPUs with AMX / AVX512-BF16, where they run several times faster than fp32); float32 otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from tunesmith.models import LoadedModel, load_model
from tunesmith.training.adapters import (
    check_method_available, count_parameters, causal_lm, decoder_and_head, load_quantized_base, make_trainable,
)
from tunesmith.training.collate import MicroBatch, collate_step
from tunesmith.train_config import TrainConfig
from tunesmith.training.dataset import PreparedData, prepare_data, validate_inputs
from tunesmith.training.distributed import (
    World, barrier, gather_objects, init_process_group, is_sharded, max_across, shard_of, sum_across, world_from_env,
    wrap_for_training,
)
from tunesmith.training.example_loss import EpochLosses, outlier_message, outliers, write_epoch
from tunesmith.hparams import (
    default_batch_size, default_learning_rate_multiplier, default_n_epochs, learning_rate,
)
from tunesmith.training.render import TokenizedExample
from tunesmith.artifacts.run_dir import (  # noqa: F401  (RunResult, StopSignal, EventSink: part of this API)
    EventSink,
    FollowerRunFiles,
    RunFiles,
    RunResult,
    StopSignal,
    list_checkpoints,
    new_run_dir,
    plot_metrics,
    read_config,
    read_json,
    saved_config,
    write_json,
)



@dataclass
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float

    @classmethod
    def resolve(cls, config: TrainConfig, n_examples: int) -> "Hyperparameters":
        n_epochs = default_n_epochs(n_examples) if config.n_epochs == "auto" else int(config.n_epochs)
        batch_size = default_batch_size(n_examples) if config.batch_size == "auto" else int(config.batch_size)
        batch_size = min(batch_size, n_examples)
        multiplier = (default_learning_rate_multiplier(batch_size) if config.learning_rate_multiplier == "auto"
                      else float(config.learning_rate_multiplier))
        return cls(n_epochs, batch_size, multiplier, learning_rate(config.method, multiplier))


@dataclass
class Progress:
    """Where the run is: the part of trainer_state.pt that is not tensors."""
    step: int = 0
    epoch: int = 0  # the epoch in progress
    step_in_epoch: int = 0  # steps of that epoch already done
    trained_tokens: int = 0
    losses: list[float] = field(default_factory=list)


# --- entry points --------------------------------------------------------------------------------------------


def train(config: TrainConfig, *, should_stop: StopSignal | None = None, on_event: EventSink | None = None,
          prepared: PreparedData | None = None) -> RunResult:
    """Fine-tune as `config` says, in a new run directory (config.output or a fresh one under the data dir).
    `prepared`: the data already tokenised (by the multi-process launcher)."""
    run = RunFiles(Path(config.output) if config.output else new_run_dir(config.suffix))
    if world_from_env().is_main:  # under torchrun every rank is handed the same config.output
        if (run.root / "state.json").is_file():
            raise FileExistsError(f"{run.root} already holds a run; continue it with "
                                  f"`tunesmith train --resume {run.root}`")
        run.root.mkdir(parents=True, exist_ok=True)
        write_json(run.root / "config.json", config.to_json_dict())
        run.write_state("queued", step=0, total_steps=None, epoch=0, trained_tokens=0)
    return _run(run, config, should_stop=should_stop, on_event=on_event, prepared=prepared)


def resume(run_dir: Path | str, *, should_stop: StopSignal | None = None, on_event: EventSink | None = None,
           prepared: PreparedData | None = None) -> RunResult:
    """Continue a run from its last checkpoint (or from the start, if it died before the first one)."""
    run = RunFiles(Path(run_dir))
    config = saved_config(run.root)
    if run.read_state().get("status") == "succeeded":
        raise ValueError(f"{run.root} already finished; to train further start a new run with --model {run.root}")
    return _run(run, config, should_stop=should_stop, on_event=on_event, resuming=True, prepared=prepared)


@dataclass
class RunPlan:
    """What a run would do, without loading weights: `train --dry-run` prints it."""
    data: PreparedData
    hyperparameters: Hyperparameters
    total_steps: int
    tokenizer: Any


def plan(config: TrainConfig) -> RunPlan:
    """Validate and tokenise the data, resolve "auto": everything up to the first step."""
    loaded = load_model(config.model, load_weights=False)
    validate_inputs(config, loaded.tokenizer, loaded.context_length)
    data = prepare_data(config, loaded.tokenizer, loaded.context_length)
    hp = Hyperparameters.resolve(config, len(data.train))
    return RunPlan(data, hp, hp.n_epochs * math.ceil(len(data.train) / hp.batch_size), loaded.tokenizer)


# --- the run -------------------------------------------------------------------------------------------------


def _run(run: RunFiles, config: TrainConfig, *, should_stop: StopSignal | None, on_event: EventSink | None,
         resuming: bool = False, prepared: PreparedData | None = None) -> RunResult:
    world = world_from_env()
    if not world.is_main:  # only rank 0 writes the run directory; the others read checkpoints from it
        run = FollowerRunFiles(run.root)

    def emit(message: str, **kw: Any) -> None:
        event = run.append_event(message, **kw)
        if on_event is not None:
            on_event(event)

    stop_flag = _InterruptFlag()
    try:
        with stop_flag:
            return _train_loop(run, config, emit, should_stop, stop_flag, resuming, world, prepared)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now; the last checkpoint still resumes
        run.write_state("cancelled", error=None)
        emit("Fine-tuning job interrupted; resume continues from the last checkpoint", level="warn")
        raise
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        run.write_state("failed", error=message)
        emit(f"Fine-tuning job failed: {message}", level="error")
        raise


def _train_loop(run: RunFiles, config: TrainConfig, emit: Callable[..., None], should_stop: StopSignal | None,
                stop_flag: "_InterruptFlag", resuming: bool, world: World,
                prepared: PreparedData | None = None) -> RunResult:
    check_method_available(config.method)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if config.device == "auto" else config.device))
    device = init_process_group(world, device)
    torch.manual_seed(config.seed)  # the same seed on every rank: identical LoRA initialisation
    random.seed(config.seed)

    dtype = training_dtype(config, device)
    # FSDP moves each rank's shard to its GPU as it shards: load whole on the CPU, never whole on one GPU.
    sharding = world.distributed and config.method == "full"
    loaded, base_ref = load_base(config, torch.device("cpu") if sharding else device, dtype)
    tokenizer = loaded.tokenizer
    if prepared is None:
        validate_inputs(config, tokenizer, loaded.context_length)
    data = prepared or prepare_data(config, tokenizer, loaded.context_length)
    for warning in data.warnings:
        emit(warning, level="warn")

    hp = Hyperparameters.resolve(config, len(data.train))
    steps_per_epoch = math.ceil(len(data.train) / hp.batch_size)
    total_steps = hp.n_epochs * steps_per_epoch
    model = make_trainable(loaded.model, config, base_ref)
    if config.method != "full" and dtype != torch.float32:
        for p in model.parameters():  # LoRA weights in fp32 over a bf16 base: AdamW updates stay exact
            if p.requires_grad:
                p.data = p.data.float()
    if config.gradient_checkpointing:
        causal_lm(model).gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    decoder, head = decoder_and_head(model)
    forward = wrap_for_training(TargetLoss(decoder, head), world, device, config.method)
    if config.torch_compile:
        forward = torch.compile(forward, dynamic=True)  # packed rows and target counts vary every step
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=config.weight_decay,
                                  fused=device.type == "cuda")  # one kernel for every tensor's update
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total_steps))

    progress = Progress()
    epoch_losses = EpochLosses(len(data.train))  # per example, for the epoch in progress: example_losses.csv
    resuming = resuming and (run.root / "data.json").is_file()  # else it died in set-up: start afresh
    if resuming:
        _check_same_data(run, data)
        _check_same_world(run, world)
        progress = _restore_checkpoint(run, model, optimizer, scheduler, world, epoch_losses)
        run.truncate_results(progress.step)
        emit(f"Resumed from step {progress.step}", data={"step": progress.step})
    elif world.is_main:
        trainable, total = count_parameters(model)
        write_json(run.root / "config.json", {
            **config.to_json_dict(),
            "n_epochs": hp.n_epochs, "batch_size": hp.batch_size,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
            "learning_rate": hp.learning_rate, "base_model": base_ref, "device": device.type,
            "torch_dtype": str(dtype).removeprefix("torch."),
            "trainable_parameters": trainable, "total_parameters": total, "world_size": world.size,
        })
        write_json(run.root / "data.json", {
            **data.summary(), "trained_tokens_estimate": sum(len(e) for e in data.train) * hp.n_epochs,
        })
        emit("Fine-tuning job started", data={"total_steps": total_steps, "n_epochs": hp.n_epochs,
                                              "batch_size": hp.batch_size, "learning_rate": hp.learning_rate,
                                              "world_size": world.size})
    if world.distributed:  # after the shared LoRA init: each rank draws its own dropout masks
        torch.manual_seed(config.seed + 1_000_003 * world.rank)
    # started_at / started_step: when this (re)start's first step began; estimated_finish extrapolates from them
    run.write_state("running", step=progress.step, total_steps=total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens, error=None, started_at=int(time.time()),
                    started_step=progress.step)

    precision = mixed_precision(model, dtype, device)
    pad_id = tokenizer.pad_token_id
    eval_steps = config.eval_steps or max(1, total_steps // 10)
    model.train()
    last_state_write = 0.0
    while progress.epoch < hp.n_epochs:
        order = epoch_order(len(data.train), config.seed, progress.epoch)
        while True:
            first = progress.step_in_epoch * hp.batch_size
            indices = order[first : first + hp.batch_size]
            started = time.perf_counter()
            local = shard_of(indices, world)
            loss, accuracy, n_tokens = train_step(
                forward, model, optimizer, scheduler,
                collate_step([data.train[i] for i in local or indices[:1]], config.micro_batch_tokens, pad_id),
                device, precision,
                world=world, weight=1.0 if local else 0.0,  # a rank with no example of a short batch still syncs
                # a rank that only takes part in the sync (weight 0) trained no example of its own
                on_token_losses=(lambda mb, losses: epoch_losses.add(local, mb.target_example, losses))
                if local else None,
            )
            elapsed = time.perf_counter() - started
            progress.step += 1
            progress.step_in_epoch += 1
            progress.trained_tokens += n_tokens
            row = {"step": progress.step, "train_loss": loss, "train_mean_token_accuracy": accuracy}
            if data.valid and progress.step % eval_steps == 0:
                batch = validation_batch(data.valid, hp.batch_size, progress.step // eval_steps)
                row["valid_loss"], row["valid_mean_token_accuracy"] = evaluate(
                    model, forward, batch, config.micro_batch_tokens, pad_id, device, precision)
            epoch_done = progress.step_in_epoch == steps_per_epoch
            if epoch_done:
                progress.epoch += 1
                progress.step_in_epoch = 0
                if data.valid:
                    row["full_valid_loss"], row["full_valid_mean_token_accuracy"] = evaluate(
                        model, forward, data.valid, config.micro_batch_tokens, pad_id, device, precision)
            run.append_result(row)  # a no-op on ranks other than 0, like every run-directory write
            emit(f"Step {progress.step}/{total_steps}: training loss={loss:.4f}", type="metrics", data={
                **row, "total_steps": total_steps, "epoch": progress.epoch,
                "tokens_per_second": n_tokens / elapsed if elapsed > 0 else None, "step_seconds": elapsed,
            })
            progress.losses.append(loss)
            if epoch_done:  # the epoch's rows go out before its checkpoint, which then holds an empty tally
                _write_example_losses(run, epoch_losses.reduced(world, device), progress.epoch, data, world)
                epoch_losses = EpochLosses(len(data.train))
                _save_checkpoint(run, model, tokenizer, optimizer, scheduler, progress, config.save_total_limit, world,
                                 epoch_losses.state_dict())
                emit(f"Checkpoint saved at step {progress.step} (epoch {progress.epoch})",
                     data={"step": progress.step, "epoch": progress.epoch})
            stop = _agreed_stop(stop_flag.requested or (should_stop() if should_stop is not None else None), world,
                                device)
            if stop:
                return _stop(run, model, tokenizer, optimizer, scheduler, progress, config, total_steps, stop, emit,
                             world, epoch_losses.reduced(world, device).state_dict())
            if epoch_done or time.monotonic() - last_state_write > 1.0:
                run.write_state("running", step=progress.step, total_steps=total_steps, epoch=progress.epoch,
                                trained_tokens=progress.trained_tokens)
                last_state_write = time.monotonic()
            if epoch_done:
                break  # the next epoch draws its own order

    output_dir = save_final(run, model, tokenizer, config, base_ref, world)
    if world.is_main:
        plot_metrics(run)
        found = outliers(run.root)
        if found:
            emit(outlier_message(found), level="warn",
                 data={"lines": [e.line for e in found], "z": [round(e.z, 2) for e in found]})
    run.write_state("succeeded", step=progress.step, total_steps=total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    # "final": however the clock ticks, this stays the job's newest event once the API merges its sources
    emit("The job has successfully completed", data={"output": str(output_dir), "final": True})
    return RunResult(run.root, "succeeded", progress.step, total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None, output_dir)


def training_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 base weights where the hardware multiplies bf16 natively; float32 elsewhere. Full fine-tuning
    on CPU stays float32: its AdamW updates would be lost to bf16 rounding."""
    if config.dtype != "auto":
        return torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
    if device.type == "cuda":
        return torch.bfloat16
    if config.method != "full" and cpu_has_native_bf16():
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


def load_base(config: TrainConfig, device: torch.device, dtype: torch.dtype) -> tuple[LoadedModel, str]:
    """The model to start from, and the base model reference its adapter will name."""
    ref = config.model
    if config.method == "qlora":
        tokenizer_only = load_model(ref, load_weights=False)
        tokenizer_only.model = load_quantized_base(tokenizer_only.source)
        loaded = tokenizer_only
    else:
        loaded = load_model(ref, dtype=dtype, device=str(device))
        loaded.model.to(dtype)  # tiny-random and some paths build in float32 whatever they are asked
    base_ref = ref
    if loaded.adapter_dir is not None:  # continuing an earlier adapter: it still sits on the same base
        meta = loaded.adapter_dir / "tunesmith.json"
        adapter_config = json.loads((loaded.adapter_dir / "adapter_config.json").read_text())
        base_ref = (json.loads(meta.read_text())["base_model"] if meta.is_file()
                    else adapter_config.get("base_model_name_or_path") or ref)
    elif Path(ref).exists():  # a local model folder (a full fine-tune's run dir: its model/ is its own base)
        base_ref = str(Path(loaded.source).resolve())
    return loaded, base_ref


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a function of (seed, epoch) alone, so a resume replays it exactly."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def validation_batch(valid: list[TokenizedExample], batch_size: int, index: int) -> list[TokenizedExample]:
    """The index-th validation batch, cycling through the validation set."""
    start = (index * batch_size) % len(valid)
    return [valid[(start + k) % len(valid)] for k in range(min(batch_size, len(valid)))]


# --- one step ------------------------------------------------------------------------------------------------


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
def evaluate(model: Any, forward: Any, examples: list[TokenizedExample], micro_batch_tokens: int,
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


def _write_example_losses(run: RunFiles, epoch_losses: EpochLosses, epoch: int, data: PreparedData,
                          world: World) -> None:
    """example_losses.csv gains the finished epoch's rows (rank 0 writes; the tally is already summed)."""
    if world.is_main:
        write_epoch(run.root, epoch, epoch_losses.rows(epoch, data.train_lines))


def _agreed_stop(stop: Any, world: World, device: torch.device) -> Any:
    """Every rank stops at the same step, or none does (a lone rank would hang the others' collectives)."""
    if not world.distributed:
        return stop
    code = max_across(2 if stop == "pause" else (1 if stop else 0), world, device)
    return {0: None, 1: "cancel", 2: "pause"}[code]


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then linear decay to zero at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


# --- checkpoints ---------------------------------------------------------------------------------------------


def _save_checkpoint(run: RunFiles, model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                     progress: Progress, keep: int, world: World = World(),
                     example_losses: dict[str, torch.Tensor] | None = None) -> Path | None:
    """Collective under FSDP (every rank gathers its shard); only rank 0 writes. Returns the folder on rank 0.
    `example_losses`: the epoch's per-example tally so far, summed over ranks (EpochLosses.state_dict)."""
    weights = _full_state_dict(model, world)
    optimizer_state = _full_optimizer_state(model, optimizer)
    rng_per_rank = gather_objects({"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                                  world)
    if not world.is_main:
        barrier(world)
        return None
    final = run.checkpoint_dir(progress.step)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _save_weights(model, tmp, weights)
    tokenizer.save_pretrained(str(tmp))  # the exact chat template travels with every checkpoint
    torch.save({
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "step": progress.step, "epoch": progress.epoch, "step_in_epoch": progress.step_in_epoch,
        "trained_tokens": progress.trained_tokens, "losses": progress.losses,
        "world_size": world.size, "rng_per_rank": rng_per_rank,
        "rng_torch": rng_per_rank[0]["torch"], "rng_cuda": rng_per_rank[0]["cuda"],
        "rng_python": rng_per_rank[0]["python"],
        **({"example_losses": example_losses} if example_losses is not None else {}),
    }, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    run.prune_checkpoints(keep)
    barrier(world)  # no rank runs ahead (and could be stopped) before the checkpoint is on disk
    return final


def _full_state_dict(model: Any, world: World) -> dict[str, torch.Tensor] | None:
    """FSDP-sharded weights gathered whole onto rank 0's CPU; None (save_pretrained reads the model) otherwise."""
    if not world.distributed or not _has_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if model.config.get_text_config().tie_word_embeddings:  # gathered as two copies; the file holds one
        weights.pop("lm_head.weight", None)
    return weights


def _full_optimizer_state(model: Any, optimizer: torch.optim.Optimizer) -> dict:
    if not _has_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _has_sharded(model: Any) -> bool:
    return any(is_sharded(m) for m in model.modules())


def _save_weights(model: Any, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    from peft import PeftModel

    if isinstance(model, PeftModel):
        # Only the adapter (adapter_model.safetensors + adapter_config.json). The vocabulary is never resized
        # here, so embeddings stay out (PEFT would otherwise look the base model up online to decide).
        model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    else:
        model.save_pretrained(str(directory), safe_serialization=True, state_dict=state_dict)


def _restore_checkpoint(run: RunFiles, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                        world: World = World(), epoch_losses: EpochLosses | None = None) -> Progress:
    checkpoints = list_checkpoints(run.root)
    if not checkpoints:
        return Progress()  # died before the first checkpoint: start over, same seed, same run
    latest = checkpoints[-1].path
    state = torch.load(latest / "trainer_state.pt", map_location="cpu", weights_only=True)
    _load_weights(model, latest)
    if _has_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng_per_rank"][world.rank] if "rng_per_rank" in state else {
        "torch": state["rng_torch"], "cuda": state["rng_cuda"], "python": state["rng_python"]}
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    python_state = random.getstate()
    random.setstate((python_state[0], tuple(rng["python"]), python_state[2]))
    # The tally was summed over ranks when saved: rank 0 carries it on, the others start from zero.
    if epoch_losses is not None and world.is_main and "example_losses" in state:
        epoch_losses.load_state_dict(state["example_losses"])
    return Progress(state["step"], state["epoch"], state["step_in_epoch"], state["trained_tokens"],
                    list(state["losses"]))


def _check_same_world(run: RunFiles, world: World) -> None:
    """A checkpoint resumes on the world size that wrote it: its RNG states, its data shards and (under FSDP)
    its optimizer layout are per rank."""
    checkpoints = list_checkpoints(run.root)
    recorded = read_config(run.root).get("world_size", 1)
    if checkpoints:
        recorded = torch.load(checkpoints[-1].path / "trainer_state.pt", map_location="cpu",
                              weights_only=True).get("world_size", recorded)
    if recorded != world.size:
        hint = f"--nproc-per-node {recorded}" if recorded > 1 else "without --nproc-per-node"
        raise ValueError(f"{run.root}: this run was trained on {recorded} process(es), not {world.size}; resume "
                         f"it on the same number ({hint}), or start a new run")


def _check_same_data(run: RunFiles, data: PreparedData) -> None:
    recorded = read_json(run.root / "data.json")
    if recorded and recorded["training_file"]["sha256"] != data.fingerprints["train"]:
        raise ValueError(f"{run.root}: the training file changed since the run started; a resume would not "
                         "replay the same run. Start a new run instead")


def _load_weights(model: Any, directory: Path) -> None:
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    if _has_sharded(model):  # each rank keeps its own shard of the full tensors
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, tensors, options=StateDictOptions(full_state_dict=True, strict=False))
        return
    if isinstance(model, PeftModel):
        result = set_peft_model_state_dict(model, tensors)
        if getattr(result, "unexpected_keys", None):
            raise RuntimeError(f"{directory}: checkpoint does not match the adapter: {result.unexpected_keys[:5]}")
    else:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected:
            raise RuntimeError(f"{directory}: checkpoint does not match the model: {unexpected[:5]}")


def _stop(run: RunFiles, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any, progress: Progress,
          config: TrainConfig, total_steps: int, stop: Any, emit: Callable[..., None],
          world: World = World(), example_losses: dict[str, torch.Tensor] | None = None) -> RunResult:
    status = "paused" if stop == "pause" else "cancelled"
    if not run.checkpoint_dir(progress.step).is_dir():
        _save_checkpoint(run, model, tokenizer, optimizer, scheduler, progress, config.save_total_limit, world,
                         example_losses)
    if world.is_main:
        plot_metrics(run)
    run.write_state(status, step=progress.step, total_steps=total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    emit(f"Fine-tuning job {status} at step {progress.step}; continue with `tunesmith train --resume {run.root}`",
         data={"step": progress.step})
    return RunResult(run.root, status, progress.step, total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None)


# --- the final model -----------------------------------------------------------------------------------------


def save_final(run: RunFiles, model: Any, tokenizer: Any, config: TrainConfig, base_ref: str,
               world: World = World()) -> Path:
    """adapter/ (PEFT, as peft and vLLM load it) or model/ (full), with the tokenizer and its exact template.
    Collective under FSDP; only rank 0 writes."""
    final = run.root / ("model" if config.method == "full" else "adapter")
    weights = _full_state_dict(model, world)
    if not world.is_main:
        barrier(world)
        return final
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _save_weights(model, tmp, weights)
    tokenizer.save_pretrained(str(tmp))
    write_json(tmp / "tunesmith.json", {
        "base_model": base_ref, "method": config.method, "run_dir": str(run.root.resolve()),
        "created_at": int(time.time()),
    })
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    barrier(world)
    return final


class _InterruptFlag:
    """Turns the first Ctrl-C into a request to checkpoint and stop at the end of the step; a second one
    interrupts at once. Only installed in the main thread (a jobs worker thread uses should_stop)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
