"""DPO on tiny-random: the loss against values worked out by hand, the reference (adapter switched off) giving
zero rewards at step 0, a run from an SFT run, resume, full fine-tuning, and the CLI flags.

TRL is not installed in this environment (its DPOTrainer needs `datasets`), so the loss is checked against
the paper's formula computed by hand below rather than against TRL's on the same batch."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from tests.training.conftest import write_chat_file
from tunesmith.train_config import TrainConfig, TrainConfigError, build_config
from tunesmith.training.dpo import dpo_loss, pair_logps, reference_logps, resume, train


def write_pairs(path: Path, n: int = 12, *, trl: bool = False, start: int = 0) -> Path:
    rows = []
    for i in range(start, start + n):
        question, good, bad = f"What is {i} plus {i + 3}?", f"It is {2 * i + 3}.", f"No idea, {i}."
        if trl:
            rows.append({"prompt": [{"role": "user", "content": question}],
                         "chosen": [{"role": "assistant", "content": good}],
                         "rejected": [{"role": "assistant", "content": bad}]})
        else:
            rows.append({"input": {"messages": [{"role": "user", "content": question}]},
                         "preferred_output": [{"role": "assistant", "content": good}],
                         "non_preferred_output": [{"role": "assistant", "content": bad}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv") as f:
        return list(csv.DictReader(f))


def test_loss_matches_the_formula_by_hand():
    pc, pr = torch.tensor([-4.0, -10.0]), torch.tensor([-6.0, -7.0])
    rc, rr = torch.tensor([-5.0, -9.0]), torch.tensor([-5.0, -8.0])
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # pair 0: chosen reward 0.5*(−4+5)=0.5, rejected 0.5*(−6+5)=−0.5, loss −log σ(1.0) = log(1+e^−1)
    # pair 1: chosen 0.5*(−10+9)=−0.5, rejected 0.5*(−7+8)=0.5, loss −log σ(−1.0) = log(1+e)
    assert chosen.tolist() == [0.5, -0.5] and rejected.tolist() == [-0.5, 0.5]
    assert losses.tolist() == pytest.approx([math.log1p(math.exp(-1.0)), math.log1p(math.e)], rel=1e-6)
    same = dpo_loss(pc, pr, pc, pr, beta=0.1)[0]
    assert same.tolist() == pytest.approx([math.log(2)] * 2)  # policy == reference: log 2, whatever beta


def test_reference_is_the_base_with_the_adapter_off(tmp_path):
    """After training, the adapter-off reference still equals the untouched base; the trained policy does not."""
    run = train(TrainConfig(model="tiny-random", train=write_pairs(tmp_path / "p.jsonl"), method="dpo",
                            n_epochs=1, batch_size=4, learning_rate_multiplier=1.0, output=tmp_path / "run"))
    first = rows(run.run_dir)[0]
    assert float(first["rewards/chosen"]) == 0.0 and float(first["rewards/rejected"]) == 0.0
    assert float(first["train_loss"]) == pytest.approx(math.log(2), abs=1e-5)
    saved = json.loads((run.run_dir / "reference_logps.json").read_text())["train"]

    from tunesmith.data.preference import read_pairs
    from tunesmith.models import load_model
    from tunesmith.training.adapters import decoder_and_head
    from tunesmith.training.render import render_example

    trained = load_model(str(run.run_dir), dtype=torch.float32, device="cpu")
    pairs = [(render_example(p.chosen, trained.tokenizer), render_example(p.rejected, trained.tokenizer))
             for p in read_pairs(tmp_path / "p.jsonl")]
    decoder, head = decoder_and_head(trained.model)
    device = torch.device("cpu")
    base = reference_logps(trained.model, decoder, head, pairs, 4096, trained.tokenizer.pad_token_id, device,
                           base_only=True)
    assert torch.allclose(base, torch.tensor(saved), atol=1e-4)
    with torch.no_grad():
        policy = pair_logps(decoder, head, pairs, 4096, trained.tokenizer.pad_token_id, device)
    assert (policy[:, 0] - base[:, 0]).mean() > 0 > (policy[:, 1] - base[:, 1]).mean()  # it learned the preference


def test_dpo_from_an_sft_run_uses_the_sft_model_as_reference_and_resumes(tmp_path):
    from tunesmith.training.sft import train as sft_train

    sft = sft_train(TrainConfig(model="tiny-random", train=write_chat_file(tmp_path / "c.jsonl", 12), n_epochs=1,
                                batch_size=4, learning_rate_multiplier=1.0, lora_dropout=0.0, output=tmp_path / "sft"))
    cfg = TrainConfig(model=str(sft.run_dir), train=write_pairs(tmp_path / "p.jsonl", trl=True),
                      validation=write_pairs(tmp_path / "v.jsonl", 10, start=50), method="dpo", beta=0.3, n_epochs=2,
                      batch_size=4, output=tmp_path / "dpo")
    stops = iter([False, False, False, "pause"])
    paused = train(cfg, should_stop=lambda: next(stops, False))
    assert paused.status == "paused" and paused.step == 4
    done = resume(paused.run_dir)
    assert done.status == "succeeded" and done.step == 6
    results = rows(done.run_dir)
    assert [int(r["step"]) for r in results] == [1, 2, 3, 4, 5, 6]
    # rewards start at 0: the reference is the SFT model as loaded, not the base under it
    # (no LoRA dropout here, so the first step's policy is exactly the reference's model)
    assert abs(float(results[0]["rewards/margins"])) < 1e-5
    assert results[-1]["valid_rewards/accuracies"] != ""
    config = json.loads((done.run_dir / "config.json").read_text())
    assert config["method"] == "dpo" and config["beta"] == 0.3 and (done.run_dir / "adapter").is_dir()


def test_full_dpo_writes_a_model(tmp_path):
    done = train(TrainConfig(model="tiny-random", train=write_pairs(tmp_path / "p.jsonl"), method="dpo",
                             dpo_weights="full", n_epochs=1, batch_size=6, output=tmp_path / "full"))
    assert done.status == "succeeded" and (done.run_dir / "model").is_dir()
    assert float(rows(done.run_dir)[0]["rewards/margins"]) == 0.0


def test_dpo_refuses_chat_data_and_bad_beta(tmp_path):
    from tunesmith.training.dataset import DataValidationError

    with pytest.raises(DataValidationError, match="wrong_data_kind"):
        train(TrainConfig(model="tiny-random", train=write_chat_file(tmp_path / "c.jsonl", 12), method="dpo",
                          output=tmp_path / "r"))
    for beta in (0, 2.5, float("nan")):
        with pytest.raises(TrainConfigError, match="beta"):
            build_config({"training_file": "x.jsonl", "method": "dpo", "beta": beta})


def test_cli_train_method_dpo_with_beta(tmp_path):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    pairs = write_pairs(tmp_path / "p.jsonl")
    runner = CliRunner()
    plan = runner.invoke(app, ["train", "--model", "tiny-random", "--train", str(pairs), "--method", "dpo",
                               "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert "It is 3." in plan.output and "No idea, 0." in plan.output  # pair 1: preferred, then non-preferred
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", "tiny-random", "--train", str(pairs), "--method", "dpo",
                                 "--beta", "0.25", "--n-epochs", "1", "--batch-size", "6", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["beta"] == 0.25 and len(rows(out)) == 2
    bad = runner.invoke(app, ["train", "--train", str(pairs), "--method", "dpo", "--beta", "3"])
    assert bad.exit_code == 2 and "beta" in bad.output
