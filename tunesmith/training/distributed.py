"""Training on several processes: launched by torchrun, wrapped by DDP (LoRA) or FSDP2 (full fine-tuning).

    tunesmith train --train data.jsonl --nproc-per-node 8                      # one machine, 8 GPUs
    tunesmith train --train data.jsonl --nproc-per-node 8 --nnodes 2 --node-rank 0 --rdzv-endpoint host:29500

The `tunesmith train` process (the launcher) validates and tokenises the data once, writes it with the
config to a private folder, then runs `python -m torch.distributed.run … -m tunesmith.training.distributed`.
Each worker reads that folder instead of tokenising again: no rank sits in a collective while another is
still tokenising (the classic multi-GPU start-up hang), and every rank trains on byte-identical examples.

Every optimizer step takes the same global batch a single process would; rank r trains examples r, r+W,
r+2W, … of it, and the loss is divided by the trained-token count summed over all ranks, so the
gradients, and the loss curve, equal the single-process run's. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
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


@dataclass
class LaunchOptions:
    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def torchrun_args(self) -> list[str]:
        args = [f"--nproc-per-node={self.nproc_per_node}", f"--nnodes={self.nnodes}"]
        if self.nnodes > 1:
            if not self.rdzv_endpoint:
                raise ValueError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
            args += [f"--node-rank={self.node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={self.rdzv_endpoint}",
                     "--rdzv-id=tunesmith"]
        else:  # one machine: a free local port, so two runs side by side do not collide
            args += ["--standalone"]
        return args


def launch_training(options: LaunchOptions, config: Any = None, *, resume_dir: Path | None = None) -> Any:
    """`tunesmith train … --nproc-per-node N`: tokenise here once, run torchrun, report rank 0's outcome."""
    from tunesmith.training import sft
    from tunesmith.train_config import TrainConfig
    from tunesmith.artifacts.run_dir import RunFiles, new_run_dir, read_config, results_rows, saved_config

    world_size = options.nproc_per_node * options.nnodes
    if resume_dir is not None:
        run = RunFiles(Path(resume_dir).resolve())
        config = saved_config(run.root)
        recorded = read_config(run.root).get("world_size", 1)
        if (run.root / "data.json").is_file() and recorded != world_size:
            raise ValueError(f"{run.root}: this run was trained on {recorded} process(es); resume it with the "
                             f"same number, not {world_size}")
    else:
        if config.output is None and options.nnodes > 1:
            raise ValueError("--nnodes > 1 needs --output DIR on shared storage, the same on every node")
        output = Path(config.output) if config.output else new_run_dir(config.suffix)
        config = config.model_copy(update={"output": output.resolve()})
        run = RunFiles(Path(config.output))
        if options.node_rank == 0 and (run.root / "state.json").is_file():
            raise FileExistsError(f"{run.root} already holds a run; continue it with `tunesmith train --resume "
                                  f"{run.root} --nproc-per-node {options.nproc_per_node}`")
    if config.method == "qlora" and world_size > 1:
        raise ValueError("--method qlora trains on one GPU only; on several use --method lora (DDP) or full (FSDP)")
    prepared = sft.plan(config).data  # validated and tokenised once, here, before any rank starts
    code = launch(run.root, config.to_json_dict(), prepared, options, resuming=resume_dir is not None)
    state = run.read_state()
    status = state.get("status", "failed")
    if code != 0 and status == "running":
        status = "failed"
    output_dir = run.root / ("model" if config.method == "full" else "adapter")
    losses = [float(r["train_loss"]) for r in results_rows(run.root) if r.get("train_loss")]
    return sft.RunResult(run.root, status, state.get("step", 0), state.get("total_steps") or 0, state.get("epoch", 0),
                         state.get("trained_tokens", 0), losses[-1] if losses else None,
                         output_dir if status == "succeeded" else None, state.get("error"))


def launch(run_dir: Path, config_json: dict[str, Any], prepared: Any, options: LaunchOptions, *,
           resuming: bool) -> int:
    """Run the workers through torchrun and wait; returns torchrun's exit status."""
    with tempfile.TemporaryDirectory(prefix="tunesmith-launch-") as handoff:
        handoff_dir = Path(handoff)
        (handoff_dir / "config.pkl").write_bytes(pickle.dumps(config_json))
        (handoff_dir / "data.pkl").write_bytes(pickle.dumps(prepared))
        command = [sys.executable, "-m", "torch.distributed.run", *options.torchrun_args(),
                   "-m", "tunesmith.training.distributed", "--run-dir", str(run_dir), "--handoff", str(handoff_dir)]
        if resuming:
            command.append("--resume")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        return subprocess.run(command, env=env).returncode


def _worker(argv: list[str] | None = None) -> int:
    """One rank, started by torchrun: train (or resume) from the launcher's hand-off folder."""
    from tunesmith.training import sft
    from tunesmith.train_config import TrainConfig

    parser = argparse.ArgumentParser(prog="tunesmith.training.distributed")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--handoff", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    config_json = pickle.loads((args.handoff / "config.pkl").read_bytes())
    prepared = pickle.loads((args.handoff / "data.pkl").read_bytes())
    world = world_from_env()

    def print_event(event: dict) -> None:  # the launcher's terminal shows rank 0's events
        if world.is_main:
            print(event["message"], flush=True)

    try:
        if args.resume:
            result = sft.resume(args.run_dir, on_event=print_event, prepared=prepared)
        else:
            config = TrainConfig.from_json_dict(config_json)
            result = sft.train(config, on_event=print_event, prepared=prepared)
    finally:
        destroy_process_group()
    return 0 if result.status in ("succeeded", "paused", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(_worker())
