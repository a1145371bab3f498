"""End to end on tiny-random: the run directory, resume after kill -9 / pause / Ctrl-C, determinism,
continued fine-tuning, export."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.conftest import write_chat_file
from tunesmith.train_config import TrainConfig
from tunesmith.training.sft import resume, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "results.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def test_cli_train_leaves_a_complete_run_directory(tmp_path, chat_file):
    from peft import PeftModel

    from tunesmith.models import load_model

    run_dir = tmp_path / "run"
    valid = write_chat_file(tmp_path / "valid.jsonl", 10, seed=7)
    done = _run_cli(["train", "--model", "tiny-random", "--train", str(chat_file), "--validation", str(valid),
                     "--n-epochs", "2", "--output", str(run_dir)])
    assert done.exit_code == 0, done.output
    for name in ("config.json", "data.json", "state.json", "results.csv", "events.jsonl", "metrics.png",
                 "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/tunesmith.json",
                 "adapter/tokenizer_config.json", "checkpoints/step-20/trainer_state.pt",
                 "checkpoints/step-40/adapter_model.safetensors"):
        assert (run_dir / name).is_file(), name
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "succeeded" and state["step"] == state["total_steps"] == 40 and state["epoch"] == 2
    assert events_started_at(run_dir) <= state["started_at"] <= state["updated_at"]  # training start, not queueing
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                             "valid_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy"]
    assert len(rows) == 40 and rows[19]["full_valid_loss"] and rows[39]["full_valid_loss"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert all(set(e) == {"object", "id", "created_at", "level", "message", "data", "type"} for e in events)
    assert events[-1]["message"] == "The job has successfully completed"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["n_epochs"] == 2 and config["batch_size"] == 1 and config["base_model"] == "tiny-random"

    loaded = load_model("tiny-random")
    model = PeftModel.from_pretrained(loaded.model, str(run_dir / "adapter"))
    assert any("lora_A" in n for n, _ in model.named_parameters())
    via_run_dir = load_model(str(run_dir))  # what `tunesmith chat --model RUN_DIR` does
    assert via_run_dir.tokenizer.chat_template == loaded.tokenizer.chat_template


def events_started_at(run_dir) -> int:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return next(e["created_at"] for e in events if e["message"] == "Fine-tuning job started")


def _run_cli(args: list[str]):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    return CliRunner().invoke(app, args)


def test_dry_run_previews_the_mask_and_trains_nothing(tmp_path, chat_file):
    result = _run_cli(["train", "--model", "tiny-random", "--train", str(chat_file), "--dry-run",
                       "--output", str(tmp_path / "never")])
    assert result.exit_code == 0, result.output
    assert "«" in result.output and "<|im_end|>»" in result.output  # the answer and its end-of-turn, marked
    assert "n_epochs=5 batch_size=1" in result.output and "100 steps" in result.output  # "auto" for 20 examples
    assert not (tmp_path / "never").exists()


def test_invalid_data_never_starts_training(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' * 12)
    result = _run_cli(["train", "--model", "tiny-random", "--train", str(bad), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "example_missing_assistant_message" in result.output
    assert not (tmp_path / "run" / "results.csv").exists()
    assert json.loads((tmp_path / "run" / "state.json").read_text())["status"] == "failed"


def test_all_weight_zero_is_refused(tmp_path):
    data = tmp_path / "w0.jsonl"
    rows = [json.loads(line) for line in write_chat_file(tmp_path / "src.jsonl", 12).read_text().splitlines()]
    for row in rows:
        row["messages"][-1]["weight"] = 0
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="no token carries loss"):
        train(TrainConfig(model="tiny-random", train=data, output=tmp_path / "run", n_epochs=1))


def test_same_seed_same_loss_curve(tmp_path, chat_file):
    runs = [train(TrainConfig(model="tiny-random", train=chat_file, n_epochs=1, batch_size=4, seed=3,
                              learning_rate_multiplier=1.0, output=tmp_path / f"run{i}")) for i in range(2)]
    assert losses(runs[0].run_dir) == losses(runs[1].run_dir)
    other = train(TrainConfig(model="tiny-random", train=chat_file, n_epochs=1, batch_size=4, seed=4,
                              learning_rate_multiplier=1.0, output=tmp_path / "run-other"))
    assert losses(other.run_dir) != losses(runs[0].run_dir)


def test_pause_then_resume_ends_where_an_uninterrupted_run_does(tmp_path, chat_file):
    def config(name: str) -> TrainConfig:
        # float32 here, "auto" (bf16 base on AMX CPUs) in the kill -9 test: both precisions resume exactly.
        return TrainConfig(model="tiny-random", train=chat_file, n_epochs=2, batch_size=2, seed=1,
                           learning_rate_multiplier=2.0, output=tmp_path / name, dtype="float32")

    reference = train(config("reference"))
    calls = {"n": 0}

    def pause_at_step_13() -> str | None:
        calls["n"] += 1
        return "pause" if calls["n"] == 13 else None  # mid-epoch 2: the step-10 checkpoint is behind it

    paused = train(config("paused"), should_stop=pause_at_step_13)
    assert paused.status == "paused" and paused.step == 13
    assert json.loads((paused.run_dir / "state.json").read_text())["status"] == "paused"
    resumed = _run_cli(["train", "--resume", str(paused.run_dir)])  # the CLI spelling of sft.resume
    assert resumed.exit_code == 0, resumed.output
    state = json.loads((paused.run_dir / "state.json").read_text())
    assert state["status"] == "succeeded" and state["step"] == reference.step == 20
    assert losses(paused.run_dir) == pytest.approx(losses(reference.run_dir), rel=1e-5)


def test_kill_9_mid_run_then_resume_matches_uninterrupted(tmp_path):
    data = write_chat_file(tmp_path / "train.jsonl", 30)
    options = dict(model="tiny-random", train=str(data), n_epochs=4, batch_size=1, seed=2,
                   learning_rate_multiplier=2.0)
    run_dir = tmp_path / "killed"
    script = f"import tunesmith; tunesmith.train(**{options!r}, output={str(run_dir)!r})"
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = run_dir / "results.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) > 1 + 34:  # past the step-30 checkpoint
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run_dir / "state.json").read_text())["status"] == "running"  # what a crash leaves

    resumed = resume(run_dir)
    reference = train(TrainConfig(**options, output=tmp_path / "reference"))
    assert resumed.status == "succeeded" and resumed.step == reference.step == 120
    assert losses(run_dir) == pytest.approx(losses(reference.run_dir), rel=1e-5)
    assert len([p for p in (run_dir / "checkpoints").iterdir()]) == 3  # last 3 kept


def test_ctrl_c_checkpoints_and_stops(tmp_path):
    data = write_chat_file(tmp_path / "train.jsonl", 30)
    run_dir = tmp_path / "run"
    script = ("import tunesmith; r = tunesmith.train(model='tiny-random', train=%r, n_epochs=50, batch_size=1, "
              "output=%r); print('STATUS', r.status, r.step)" % (str(data), str(run_dir)))
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, cwd=Path(__file__).parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = run_dir / "results.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (results.is_file() and len(results.read_text().splitlines()) > 5):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "STATUS cancelled" in out, err[-2000:]
    step = int(out.split("STATUS cancelled")[1].split()[0])
    assert (run_dir / "checkpoints" / f"step-{step}" / "trainer_state.pt").is_file()
    assert json.loads((run_dir / "state.json").read_text())["status"] == "cancelled"


def test_continue_from_a_run_then_export_merged(tmp_path, chat_file):
    from transformers import AutoModelForCausalLM

    from tunesmith.models import load_model

    first = train(TrainConfig(model="tiny-random", train=chat_file, n_epochs=1, batch_size=4,
                              learning_rate_multiplier=5.0, output=tmp_path / "first"))
    second = train(TrainConfig(model=str(first.run_dir), train=chat_file, n_epochs=1, batch_size=4,
                               learning_rate_multiplier=5.0, output=tmp_path / "second"))
    meta = json.loads((second.output_dir / "tunesmith.json").read_text())
    assert meta["base_model"] == "tiny-random"
    assert losses(second.run_dir)[0] < losses(first.run_dir)[0]  # it starts from what the first run learnt

    out = tmp_path / "merged"
    result = _run_cli(["export", str(second.run_dir), "--merged", str(out)])
    assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    adapted = load_model(str(second.run_dir)).model
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)


def test_full_fine_tune_saves_a_model(tmp_path, chat_file):
    from tunesmith.models import load_model

    result = train(TrainConfig(model="tiny-random", train=chat_file, method="full", n_epochs=1, batch_size=4,
                               output=tmp_path / "full"))
    assert (result.run_dir / "model" / "model.safetensors").is_file()
    reloaded = load_model(str(result.run_dir))  # a full fine-tune's run dir loads its model/
    assert reloaded.tokenizer.chat_template is not None


def test_qlora_without_cuda_says_what_is_missing(tmp_path, chat_file):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: QLoRA may run here")
    with pytest.raises(ValueError, match="qlora needs a CUDA GPU"):
        train(TrainConfig(model="tiny-random", train=chat_file, method="qlora", output=tmp_path / "q"))


def test_a_loss_that_turns_nan_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, chat_file, monkeypatch):
    """Weights poisoned with NaN at step 23 (of 40): the run fails there, naming the step; step-20 survives."""
    from tunesmith.training import sft

    real_step, calls = sft.train_step, []

    def poisoned_step(forward, model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 23:
            next(p for p in model.parameters() if p.requires_grad).data.fill_(float("nan"))
        return real_step(forward, model, *args, **kwargs)

    monkeypatch.setattr(sft, "train_step", poisoned_step)
    run_dir = tmp_path / "run"
    with pytest.raises(sft.NonFiniteLossError, match="step 23"):
        train(TrainConfig(model="tiny-random", train=chat_file, n_epochs=2, output=run_dir))
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "failed" and "step 23" in state["error"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["level"] == "error" and "step 23" in events[-1]["message"]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-20"]
    assert (run_dir / "checkpoints" / "step-20" / "trainer_state.pt").is_file() and not (run_dir / "adapter").exists()
    with open(run_dir / "results.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)][-1] == 22  # no NaN row
