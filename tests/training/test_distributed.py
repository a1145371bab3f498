"""Two processes through torchrun on CPU (gloo): the same loss curve as one process with the same global
batch, only rank 0 writes the run directory, and a 2-process checkpoint resumes (on 2 processes only)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.training.conftest import write_chat_file
from tunesmith.train_config import TrainConfig
from tunesmith.training.distributed import World, shard_of
from tunesmith.training.launch import LaunchOptions
from tunesmith.training.sft import resume, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
# float32 and no LoRA dropout: two ranks then compute the single process's gradients up to summation order.
SETTINGS = {"model": "tiny-random", "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 4.0,
            "lora_dropout": 0.0, "dtype": "float32", "device": "cpu", "seed": 3}


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "results.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def tunesmith_cli(*args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "tunesmith"
    return subprocess.run([str(cli), *args], env=ENV, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One 2-process run via the CLI and the single-process run it must equal."""
    root = tmp_path_factory.mktemp("distributed")
    data = write_chat_file(root / "train.jsonl", 20, seed=5)
    config_file = root / "run.yaml"
    config_file.write_text(yaml.safe_dump({**SETTINGS, "train": str(data)}))
    two = root / "two"
    done = tunesmith_cli("train", "--config", str(config_file), "--nproc-per-node", "2", "--output", str(two))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one = train(TrainConfig(**SETTINGS, train=data, output=root / "one")).run_dir
    return {"one": one, "two": two, "config": config_file}


def test_two_processes_follow_the_single_process_loss_curve(runs):
    one, two = losses(runs["one"]), losses(runs["two"])
    assert len(one) == len(two) == 10  # 20 examples, batch 4, 2 epochs: 5 steps each
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    assert one[-1] < one[0] - 0.3  # the curve moved: the comparison is not between two flat lines
    state = json.loads((runs["two"] / "state.json").read_text())
    assert state["status"] == "succeeded" and state["trained_tokens"] == json.loads(
        (runs["one"] / "state.json").read_text())["trained_tokens"]


def test_only_rank_zero_writes_the_run_directory(runs):
    two = runs["two"]
    messages = [json.loads(line)["message"] for line in (two / "events.jsonl").read_text().splitlines()]
    assert sum(m.startswith("Step 1/") for m in messages) == 1  # one writer, not one per rank
    assert sum(m == "Fine-tuning job started" for m in messages) == 1
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert (two / "adapter" / "adapter_model.safetensors").is_file()
    assert not [p.name for p in two.rglob("*") if ".tmp" in p.name]


def test_a_two_process_checkpoint_resumes_the_same_curve(runs, tmp_path):
    crashed = tmp_path / "crashed"
    shutil.copytree(runs["two"], crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-10")  # died in epoch 2, after the step-5 checkpoint
    shutil.rmtree(crashed / "adapter")
    state = json.loads((crashed / "state.json").read_text())
    (crashed / "state.json").write_text(json.dumps({**state, "status": "failed"}))

    done = tunesmith_cli("train", "--resume", str(crashed), "--nproc-per-node", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert losses(crashed) == pytest.approx(losses(runs["two"]), rel=1e-5, abs=1e-6)
    assert json.loads((crashed / "state.json").read_text())["status"] == "succeeded"


def test_resume_on_another_world_size_is_refused(runs, tmp_path):
    crashed = tmp_path / "crashed"
    shutil.copytree(runs["two"], crashed)
    (crashed / "state.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(ValueError, match="trained on 2 process"):
        resume(crashed)  # one process
    done = tunesmith_cli("train", "--resume", str(crashed), "--nproc-per-node", "3")
    assert done.returncode == 2 and "trained on 2 process" in done.stdout + done.stderr


def test_full_fine_tuning_shards_with_fsdp_and_matches_one_process(tmp_path):
    from safetensors.torch import load_file

    data = write_chat_file(tmp_path / "train.jsonl", 12, seed=9)
    settings = {**SETTINGS, "method": "full", "n_epochs": 1, "train": str(data)}
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(settings))
    done = tunesmith_cli("train", "--config", str(tmp_path / "full.yaml"), "--nproc-per-node", "2",
                         "--output", str(tmp_path / "two"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one = train(TrainConfig(**settings, output=tmp_path / "one")).run_dir
    assert losses(tmp_path / "two") == pytest.approx(losses(one), rel=1e-4, abs=1e-5)
    sharded, whole = (load_file(str(d / "model" / "model.safetensors")) for d in (tmp_path / "two", one))
    assert sharded.keys() == whole.keys()  # gathered from the shards into one whole model
    assert all((sharded[k] - whole[k]).abs().max() < 1e-5 for k in whole)


def test_each_rank_takes_an_interleaved_shard_of_the_global_batch():
    batch = list(range(7))
    shards = [shard_of(batch, World(r, 3)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shards, [])) == batch


def test_multi_node_launch_needs_a_rendezvous_endpoint():
    with pytest.raises(ValueError, match="rdzv-endpoint"):
        LaunchOptions(2, nnodes=2, node_rank=1).torchrun_args()
    args = LaunchOptions(8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29500").torchrun_args()
    assert "--rdzv-endpoint=node0:29500" in args and "--node-rank=1" in args and "--standalone" not in args
