"""Checkpoints of a run: save (atomically, last 3 kept), restore everything a resume needs (weights, optimizer,
scheduler, data position, RNG per rank), the final adapter/ or model/, and the checks that a resume replays the
same run (same training file, same world size). Collective under FSDP; only rank 0 writes."""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunesmith.artifacts.run_dir import RunFiles, list_checkpoints, read_config, read_json, write_json
from tunesmith.train_config import TrainConfig
from tunesmith.training.dataset import PreparedData
from tunesmith.training.distributed import World, barrier, gather_objects, is_sharded
from tunesmith.training.example_loss import EpochLosses


@dataclass
class Progress:
    """Where the run is: the part of trainer_state.pt that is not tensors."""
    step: int = 0
    epoch: int = 0  # the epoch in progress
    step_in_epoch: int = 0  # steps of that epoch already done
    trained_tokens: int = 0
    losses: list[float] = field(default_factory=list)


def save_checkpoint(run: RunFiles, model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
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


def restore_checkpoint(run: RunFiles, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
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


def check_same_world(run: RunFiles, world: World) -> None:
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


def check_same_data(run: RunFiles, data: PreparedData) -> None:
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


def save_final(run: RunFiles, model: Any, tokenizer: Any, config: TrainConfig, base_ref: str,
               world: World = World()) -> Path:
    """adapter/ (PEFT, as peft and vLLM load it) or model/ (full), with the tokenizer and its exact template.
    Collective under FSDP; only rank 0 writes."""
    final = run.root / ("model" if config.weights == "full" else "adapter")
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
