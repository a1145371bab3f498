"""Supervised fine-tuning: the recipe, readable top to bottom.

    result = train(TrainConfig(model="tiny-random", train="data.jsonl", n_epochs=2))
    result = resume(result.run_dir)          # after a crash, kill -9, Ctrl-C or pause

Set-up (model, data, optimizer), then for each step (`step.train_step`): pack the step's examples into
padding-free micro-batches, apply the loss only at trained positions, accumulate gradients normalised by the
step's trained-token count, step the optimizer. A checkpoint (`checkpoint.py`) closes every epoch (and any
stop), holding everything a resume needs. A loss that turns NaN/inf fails the run at that step, before it can
overwrite the last good checkpoint. To begin or resume in the right place (here, torchrun, a provider), use
`training.launch.start`.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from tunesmith.artifacts.run_dir import (  # noqa: F401  (RunResult, StopSignal, EventSink: part of this API)
    EventSink,
    FollowerRunFiles,
    RunFiles,
    RunResult,
    StopSignal,
    list_checkpoints,
    new_run_dir,
    plot_metrics,
    saved_config,
    write_json,
)
from tunesmith.hparams import default_batch_size, default_learning_rate_multiplier, default_n_epochs, learning_rate
from tunesmith.models import LoadedModel, load_model
from tunesmith.train_config import TrainConfig
from tunesmith.training.adapters import (
    check_method_available, count_parameters, causal_lm, decoder_and_head, load_quantized_base, make_trainable,
)
from tunesmith.training.checkpoint import (
    Progress, check_same_data, check_same_world, restore_checkpoint, save_checkpoint, save_final,
)
from tunesmith.training.collate import collate_step
from tunesmith.training.dataset import PreparedData, prepare_data, validate_inputs
from tunesmith.training.distributed import World, init_process_group, max_across, shard_of, world_from_env, wrap_for_training
from tunesmith.training.eos_check import warn_if_never_stops
from tunesmith.training.example_loss import EpochLosses, outlier_message, outliers, write_epoch
from tunesmith.training.render import TokenizedExample
from tunesmith.training.step import TargetLoss, mixed_precision, train_step, training_dtype, validation_loss


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
        return cls(n_epochs, batch_size, multiplier, learning_rate(config.weights, multiplier))


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


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite: the weights are ruined from this step on."""


def _run(run: RunFiles, config: TrainConfig, *, should_stop: StopSignal | None, on_event: EventSink | None,
         resuming: bool = False, prepared: PreparedData | None = None) -> RunResult:
    world = world_from_env()
    if not world.is_main:  # only rank 0 writes the run directory; the others read checkpoints from it
        run = FollowerRunFiles(run.root)

    emit = event_sink(run, on_event)
    stop_flag = _InterruptFlag()

    def loop() -> RunResult:
        with stop_flag:
            return _train_loop(run, config, emit, should_stop, stop_flag, resuming, world, prepared)
    return guarded(run, emit, loop)


def event_sink(run: RunFiles, on_event: EventSink | None) -> Callable[..., None]:
    """Append an event to the run's log and hand it to the caller's sink (a job's store, a progress line)."""
    def emit(message: str, **kw: Any) -> None:
        event = run.append_event(message, **kw)
        if on_event is not None:
            on_event(event)
    return emit


def guarded(run: RunFiles, emit: Callable[..., None], loop: Callable[[], RunResult]) -> RunResult:
    """Run a recipe's loop; an interrupt or a failure is written to the run's state and events first."""
    try:
        return loop()
    except KeyboardInterrupt:  # a second Ctrl-C: stop now; the last checkpoint still resumes
        run.write_state("cancelled", error=None)
        emit("Fine-tuning job interrupted; resume continues from the last checkpoint", level="warn")
        raise
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        run.write_state("failed", error=message)
        emit(f"Fine-tuning job failed: {message}", level="error")
        raise


@dataclass
class _Setup:
    """Everything the loop steps with, built once by _set_up."""
    model: Any
    tokenizer: Any
    base_ref: str
    forward: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    dtype: torch.dtype
    data: PreparedData
    hp: Hyperparameters
    steps_per_epoch: int
    total_steps: int


def _train_loop(run: RunFiles, config: TrainConfig, emit: Callable[..., None], should_stop: StopSignal | None,
                stop_flag: "_InterruptFlag", resuming: bool, world: World,
                prepared: PreparedData | None = None) -> RunResult:
    s = _set_up(config, world, emit, prepared)
    progress = Progress()
    epoch_losses = EpochLosses(len(s.data.train))  # per example, for the epoch in progress: example_losses.csv
    resuming = resuming and (run.root / "data.json").is_file()  # else it died in set-up: start afresh
    if resuming:
        check_same_data(run, s.data)
        check_same_world(run, world)
        progress = restore_checkpoint(run, s.model, s.optimizer, s.scheduler, world, epoch_losses)
        run.truncate_results(progress.step)
        emit(f"Resumed from step {progress.step}", data={"step": progress.step})
    elif world.is_main:
        _record_start(run, config, s, world, emit)
    if world.distributed:  # after the shared LoRA init: each rank draws its own dropout masks
        torch.manual_seed(config.seed + 1_000_003 * world.rank)
    # started_at / started_step: when this (re)start's first step began; estimated_finish extrapolates from them
    run.write_state("running", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens, error=None, started_at=int(time.time()),
                    started_step=progress.step)

    precision = mixed_precision(s.model, s.dtype, s.device)
    eval_steps = config.eval_steps or max(1, s.total_steps // 10)
    s.model.train()
    last_state_write = 0.0
    while progress.epoch < s.hp.n_epochs:
        order = epoch_order(len(s.data.train), config.seed, progress.epoch)
        while True:
            epoch_done = _step(run, config, s, progress, order, epoch_losses, precision, eval_steps, world, emit)
            if epoch_done:  # the epoch's rows go out before its checkpoint, which then holds an empty tally
                _write_example_losses(run, epoch_losses.reduced(world, s.device), progress.epoch, s.data, world)
                epoch_losses = EpochLosses(len(s.data.train))
                save_checkpoint(run, s.model, s.tokenizer, s.optimizer, s.scheduler, progress,
                                config.save_total_limit, world, epoch_losses.state_dict())
                emit(f"Checkpoint saved at step {progress.step} (epoch {progress.epoch})",
                     data={"step": progress.step, "epoch": progress.epoch})
            stop = _agreed_stop(stop_flag.requested or (should_stop() if should_stop is not None else None), world,
                                s.device)
            if stop:
                return _stop(run, s.model, s.tokenizer, s.optimizer, s.scheduler, progress, config, s.total_steps,
                             stop, emit, world, epoch_losses.reduced(world, s.device).state_dict())
            if epoch_done or time.monotonic() - last_state_write > 1.0:
                run.write_state("running", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                                trained_tokens=progress.trained_tokens)
                last_state_write = time.monotonic()
            if epoch_done:
                break  # the next epoch draws its own order
    return _finish(run, config, s, progress, world, emit)


def _set_up(config: TrainConfig, world: World, emit: Callable[..., None],
            prepared: PreparedData | None) -> _Setup:
    """Device, base model, data, trainable model, optimizer and schedule: everything up to the first step."""
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
    return _Setup(model, tokenizer, base_ref, forward, optimizer, scheduler, device, dtype, data, hp,
                  steps_per_epoch, total_steps)


def _record_start(run: RunFiles, config: TrainConfig, s: _Setup, world: World, emit: Callable[..., None]) -> None:
    """config.json with what "auto" resolved to, data.json, and the job's "started" event (rank 0)."""
    trainable, total = count_parameters(s.model)
    hp = s.hp
    write_json(run.root / "config.json", {
        **config.to_json_dict(),
        "n_epochs": hp.n_epochs, "batch_size": hp.batch_size,
        "learning_rate_multiplier": hp.learning_rate_multiplier,
        "learning_rate": hp.learning_rate, "base_model": s.base_ref, "device": s.device.type,
        "torch_dtype": str(s.dtype).removeprefix("torch."),
        "trainable_parameters": trainable, "total_parameters": total, "world_size": world.size,
    })
    write_json(run.root / "data.json", {
        **s.data.summary(), "trained_tokens_estimate": sum(len(e) for e in s.data.train) * hp.n_epochs,
    })
    emit("Fine-tuning job started", data={"total_steps": s.total_steps, "n_epochs": hp.n_epochs,
                                          "batch_size": hp.batch_size, "learning_rate": hp.learning_rate,
                                          "world_size": world.size})


def _step(run: RunFiles, config: TrainConfig, s: _Setup, progress: Progress, order: list[int],
          epoch_losses: EpochLosses, precision: Callable[[], Any], eval_steps: int, world: World,
          emit: Callable[..., None]) -> bool:
    """One optimizer step, its validation figures and its results.csv row; True when it closed the epoch."""
    pad_id = s.tokenizer.pad_token_id
    first = progress.step_in_epoch * s.hp.batch_size
    indices = order[first : first + s.hp.batch_size]
    started = time.perf_counter()
    local = shard_of(indices, world)
    loss, accuracy, n_tokens = train_step(
        s.forward, s.model, s.optimizer, s.scheduler,
        collate_step([s.data.train[i] for i in local or indices[:1]], config.micro_batch_tokens, pad_id),
        s.device, precision,
        world=world, weight=1.0 if local else 0.0,  # a rank with no example of a short batch still syncs
        # a rank that only takes part in the sync (weight 0) trained no example of its own
        on_token_losses=(lambda mb, losses: epoch_losses.add(local, mb.target_example, losses)) if local else None,
    )
    elapsed = time.perf_counter() - started
    if not math.isfinite(loss):  # the same summed loss on every rank: all stop here together
        kept = list_checkpoints(run.root)
        raise NonFiniteLossError(
            f"the training loss became {loss} at step {progress.step + 1}; stopped before it could overwrite a "
            f"checkpoint ({'the last good one is step ' + str(kept[-1].step) if kept else 'none saved yet'}). "
            "Lower learning_rate_multiplier or check the data")
    progress.step += 1
    progress.step_in_epoch += 1
    progress.trained_tokens += n_tokens
    row = {"step": progress.step, "train_loss": loss, "train_mean_token_accuracy": accuracy}
    if s.data.valid and progress.step % eval_steps == 0:
        batch = validation_batch(s.data.valid, s.hp.batch_size, progress.step // eval_steps)
        row["valid_loss"], row["valid_mean_token_accuracy"] = validation_loss(
            s.model, s.forward, batch, config.micro_batch_tokens, pad_id, s.device, precision)
    epoch_done = progress.step_in_epoch == s.steps_per_epoch
    if epoch_done:
        progress.epoch += 1
        progress.step_in_epoch = 0
        if s.data.valid:
            row["full_valid_loss"], row["full_valid_mean_token_accuracy"] = validation_loss(
                s.model, s.forward, s.data.valid, config.micro_batch_tokens, pad_id, s.device, precision)
    run.append_result(row)  # a no-op on ranks other than 0, like every run-directory write
    emit(f"Step {progress.step}/{s.total_steps}: training loss={loss:.4f}", type="metrics", data={
        **row, "total_steps": s.total_steps, "epoch": progress.epoch,
        "tokens_per_second": n_tokens / elapsed if elapsed > 0 else None, "step_seconds": elapsed,
    })
    progress.losses.append(loss)
    return epoch_done


def _finish(run: RunFiles, config: TrainConfig, s: _Setup, progress: Progress, world: World,
            emit: Callable[..., None]) -> RunResult:
    """The final adapter/ or model/, the metrics chart, the outlier warning and the `succeeded` state."""
    output_dir = save_final(run, s.model, s.tokenizer, config, s.base_ref, world)
    if world.is_main:
        plot_metrics(run)
        found = outliers(run.root)
        if found:
            emit(outlier_message(found), level="warn",
                 data={"lines": [e.line for e in found], "z": [round(e.z, 2) for e in found]})
        warn_if_never_stops(s.model, s.tokenizer, s.data.train, emit)  # tunesmith.training.eos_check
    run.write_state("succeeded", step=progress.step, total_steps=s.total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    # "final": however the clock ticks, this stays the job's newest event once the API merges its sources
    emit("The job has successfully completed", data={"output": str(output_dir), "final": True})
    return RunResult(run.root, "succeeded", progress.step, s.total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None, output_dir)


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


# --- small pieces -------------------------------------------------------------------------------------------


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


def _stop(run: RunFiles, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any, progress: Progress,
          config: TrainConfig, total_steps: int, stop: Any, emit: Callable[..., None],
          world: World = World(), example_losses: dict[str, torch.Tensor] | None = None) -> RunResult:
    status = "paused" if stop == "pause" else "cancelled"
    if not run.checkpoint_dir(progress.step).is_dir():
        save_checkpoint(run, model, tokenizer, optimizer, scheduler, progress, config.save_total_limit, world,
                         example_losses)
    if world.is_main:
        plot_metrics(run)
    run.write_state(status, step=progress.step, total_steps=total_steps, epoch=progress.epoch,
                    trained_tokens=progress.trained_tokens)
    emit(f"Fine-tuning job {status} at step {progress.step}; continue with `tunesmith train --resume {run.root}`",
         data={"step": progress.step})
    return RunResult(run.root, status, progress.step, total_steps, progress.epoch, progress.trained_tokens,
                     progress.losses[-1] if progress.losses else None)


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
