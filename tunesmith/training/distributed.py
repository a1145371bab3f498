"""Training on several processes: launched by torchrun, wrapped by DDP (LoRA) or FSDP2 (full fine-tuning).

    tunesmith train --train data.jsonl --nproc-per-node 8                      # one machine, 8 GPUs
    tunesmith train --train data.jsonl --nproc-per-node 8 --nnodes 2 --node-rank 0 --rdzv-endpoint host:29500

This module holds the World (rank, size) and the collectives the loop uses; `training.launch` starts the
processes.

Every optimizer step takes the same global batch a single process would; rank r trains examples r, r+W,
r+2W, … of it, and the loss is divided by the trained-token count summed over all ranks, so the
gradients, and the loss curve, equal the single-process run's. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process, rank 0, when not launched)."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def world_from_env() -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return SINGLE
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def init_process_group(world: World, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); returns the device this rank trains on."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across(values: Sequence[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sums over all ranks (float64: token counts stay exact)."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def max_across(value: int, world: World, device: torch.device) -> int:
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def shard_of(examples: list[Any], world: World) -> list[Any]:
    """The examples of one global batch this rank trains: r, r+W, r+2W, …"""
    return examples[world.rank :: world.size]


def gather_objects(value: Any, world: World) -> list[Any]:
    """`value` from every rank, in rank order (RNG states for the checkpoint)."""
    if not world.distributed:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def wrap_for_training(module: torch.nn.Module, world: World, device: torch.device, method: str) -> torch.nn.Module:
    """DDP for LoRA (the adapter is small: replicate it, all-reduce its gradients); FSDP2 `fully_shard` for
    full fine-tuning, sharding each decoder layer's weights, gradients and optimizer state across ranks."""
    if not world.distributed:
        return module
    if method == "full":
        from torch.distributed.fsdp import fully_shard

        for layer in decoder_layers(module):
            fully_shard(layer)
        return fully_shard(module)
    from torch.nn.parallel import DistributedDataParallel

    # broadcast_buffers off: the only buffers are RoPE tables, equal on every rank, and a broadcast per forward
    # would be a collective in evaluation too.
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False)


def decoder_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (each becomes one FSDP unit): the children of the model's `layers` list."""
    for name, child in module.named_modules():
        if name.endswith("layers") and isinstance(child, torch.nn.ModuleList):
            return list(child)
    return []


def is_sharded(module: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


# --- the launcher ---------------------------------------------------------------------------------------------
