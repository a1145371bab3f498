"""The one way to begin or resume a training run: `start(config or run dir)` decides where it runs.

    start(TrainConfig(model="tiny-random", train="data.jsonl"))            # here, in this process
    start(config, launch=LaunchOptions(nproc_per_node=8))                 # through torchrun, 8 processes
    start(TrainConfig(model="gpt-35-turbo-0125", train=...), provider="azure-east")   # in a provider's cloud
    start(run_dir)                                                        # resume, wherever it ran

`tunesmith train`, `tunesmith.train()` and the jobs worker all call start().

Under torchrun the `tunesmith train` process (the launcher) validates and tokenises the data once, writes it
with the config to a private folder, then runs `python -m torch.distributed.run … -m tunesmith.training.launch`.
Each worker reads that folder instead of tokenising again: no rank sits in a collective while another is
still tokenising (the classic multi-GPU start-up hang), and every rank trains on byte-identical examples.
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
from typing import Any, Literal

from tunesmith.artifacts.run_dir import (
    EventSink, RunFiles, RunResult, StopSignal, new_run_dir, read_config, results_rows, saved_config,
)
from tunesmith.train_config import TrainConfig
from tunesmith.training.distributed import destroy_process_group, world_from_env

Where = Literal["local", "torchrun", "provider"]


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
    if config.method == "dpo":
        raise ValueError("--method dpo trains in one process; run it without --nproc-per-node / --nnodes")
    if config.method == "qlora" and world_size > 1:
        raise ValueError("--method qlora trains on one GPU only; on several use --method lora (DDP) or full (FSDP)")
    prepared = sft.plan(config).data  # validated and tokenised once, here, before any rank starts
    code = launch(run.root, config.to_json_dict(), prepared, options, resuming=resume_dir is not None)
    state = run.read_state()
    status = state.get("status", "failed")
    if code != 0 and status == "running":
        status = "failed"
    output_dir = run.root / ("model" if config.weights == "full" else "adapter")
    losses = [float(r["train_loss"]) for r in results_rows(run.root) if r.get("train_loss")]
    return RunResult(run.root, status, state.get("step", 0), state.get("total_steps") or 0, state.get("epoch", 0),
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
                   "-m", "tunesmith.training.launch", "--run-dir", str(run_dir), "--handoff", str(handoff_dir)]
        if resuming:
            command.append("--resume")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        return subprocess.run(command, env=env).returncode


def _worker(argv: list[str] | None = None) -> int:
    """One rank, started by torchrun: train (or resume) from the launcher's hand-off folder."""
    from tunesmith.training import sft

    parser = argparse.ArgumentParser(prog="tunesmith.training.launch")
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


def where_to_train(target: TrainConfig | Path, *, launch: LaunchOptions | None = None,
                   provider: str | None = None) -> Where:
    """A provider run (named, a provider model, or a run dir a provider trained), torchrun when asked, else here."""
    from tunesmith.providers import remote_train

    if isinstance(target, TrainConfig):
        at_provider = provider is not None or remote_train.trains_at_provider(target.model)
    else:
        at_provider = remote_train.is_remote_run(target)
    if at_provider:
        return "provider"
    return "torchrun" if launch is not None else "local"


def start(target: TrainConfig | Path | str, *, launch: LaunchOptions | None = None, provider: str | None = None,
          should_stop: StopSignal | None = None, on_event: EventSink | None = None) -> RunResult:
    """Begin the run `target` (a TrainConfig) describes, or resume `target` (a run directory), where it belongs.

    Under torchrun rank 0's events print from the workers (`on_event` and `should_stop` are not passed on)."""
    from tunesmith.training import sft

    if not isinstance(target, TrainConfig):
        target = Path(target)
    where = where_to_train(target, launch=launch, provider=provider)
    if where == "provider":
        from tunesmith.providers import remote_train

        if isinstance(target, TrainConfig):
            return remote_train.train_remote(target, provider, should_stop=should_stop, on_event=on_event)
        return remote_train.resume_remote(target, should_stop=should_stop, on_event=on_event)
    if where == "torchrun":
        if isinstance(target, TrainConfig):
            return launch_training(launch, target)
        return launch_training(launch, resume_dir=target)
    recipe = sft
    if (target if isinstance(target, TrainConfig) else saved_config(target)).method == "dpo":
        from tunesmith.training import dpo as recipe
    if isinstance(target, TrainConfig):
        return recipe.train(target, should_stop=should_stop, on_event=on_event)
    return recipe.resume(target, should_stop=should_stop, on_event=on_event)


if __name__ == "__main__":
    sys.exit(_worker())
