"""`tunesmith providers check`, `train --provider` and `eval --provider` end to end against the fake provider."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.providers.fake_provider import ALIASES, API_KEY, KEY_ENV, fake_provider
from tests.server.live_server import write_chat_file
from tunesmith.cli import app

runner = CliRunner()
pytestmark = pytest.mark.timeout(300)


def test_train_and_eval_a_provider_model_from_the_command_line(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_MODEL_ALIASES", ALIASES)
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    train = write_chat_file(tmp_path / "train.jsonl")
    with fake_provider(tmp_path / "provider") as fake:
        added = runner.invoke(app, ["providers", "add", "fake", "--kind", "azure", "--endpoint", fake.url,
                                    "--api-key-env", KEY_ENV])
        assert added.exit_code == 0, added.output
        checked = runner.invoke(app, ["providers", "check", "fake"])
        assert checked.exit_code == 0 and "key accepted" in checked.output, checked.output
        monkeypatch.setenv(KEY_ENV, "wrong-key")
        refused = runner.invoke(app, ["providers", "check", "fake"])
        assert refused.exit_code == 2 and "key was refused" in _flat(refused.output)
        monkeypatch.setenv(KEY_ENV, API_KEY)

        out = runner.invoke(app, ["train", "--model", "gpt-4o-mini-2024-07-18", "--provider", "fake", "--train", str(train),
                                  "--n-epochs", "1", "--batch-size", "4", "--output", str(tmp_path / "run")])
        assert out.exit_code == 0, out.output
        state = json.loads((tmp_path / "run" / "state.json").read_text())
        assert state["status"] == "succeeded" and state["fine_tuned_model"] in _flat(out.output)

        again = runner.invoke(app, ["train", "--resume", str(tmp_path / "run")])
        assert again.exit_code == 2 and "already finished" in _flat(again.output)

        # The fake Azure resource serves the fine-tuned model as a deployment of the same name.
        evaluated = runner.invoke(app, ["eval", "--provider", "fake", "--model", state["fine_tuned_model"], "--data",
                                        str(train), "-g", "exact", "--limit", "3", "--max-new-tokens", "4",
                                        "--output", str(tmp_path / "eval")])
        assert evaluated.exit_code == 0, evaluated.output
        summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
        assert summary["model"] == state["fine_tuned_model"] and summary["n"] == 3
        predictions = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
        assert len(predictions) == 3 and all(json.loads(p)["completion_tokens"] > 0 for p in predictions)

        undeployed = runner.invoke(app, ["eval", "--provider", "fake", "--model", "support-ft", "--data", str(train),
                                         "-g", "exact", "--limit", "1", "--output", str(tmp_path / "eval2")])
        assert undeployed.exit_code == 2 and "DeploymentNotFound" in _flat(undeployed.output)

    forgot = runner.invoke(app, ["train", "--model", "gpt-4o-mini-2024-07-18", "--train", str(train)])
    assert forgot.exit_code == 2 and "pass --provider NAME" in _flat(forgot.output)


def _flat(output: str) -> str:
    """Rich wraps long lines at the terminal width; compare text, not layout."""
    return " ".join(output.split())
