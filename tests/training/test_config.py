"""One schema behind CLI flags, YAML and Python; "auto" hyperparameters like OpenAI's."""

import pytest

from tunesmith.train_config import TrainConfig, TrainConfigError, build_config, load_config_file
from tunesmith.hparams import default_batch_size, default_learning_rate_multiplier, learning_rate
from tunesmith.training.sft import Hyperparameters


def test_yaml_python_and_flags_build_the_same_config(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("model: tiny-random\ntrain: data.jsonl\nn-epochs: 3\nlearning_rate_multiplier: 0.1\n")
    from_yaml = load_config_file(yaml_file)
    from_python = TrainConfig(model="tiny-random", train="data.jsonl", n_epochs=3, learning_rate_multiplier=0.1)
    from_flags = build_config({"model": "tiny-random", "train": "data.jsonl", "n_epochs": "3",
                               "learning_rate_multiplier": "0.1"})
    assert from_yaml == from_python == from_flags
    assert load_config_file(yaml_file, n_epochs=5).n_epochs == 5  # a flag beats the file


def test_config_errors_name_the_file_and_field(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train: data.jsonl\nn_epochs: 0\nmethod: dora\nlearning_rate: 1\n")
    with pytest.raises(TrainConfigError) as e:
        load_config_file(yaml_file)
    message = str(e.value)
    assert str(yaml_file) in message and "n_epochs" in message and "method" in message and "learning_rate" in message


def test_config_round_trips_through_its_json(tmp_path):
    config = TrainConfig(train="d.jsonl", validation="v.jsonl", batch_size=4)
    assert TrainConfig(**config.to_json_dict()) == config


def test_auto_hyperparameters_follow_openai():
    assert default_batch_size(20) == 1 and default_batch_size(5_000) == 10 and default_batch_size(10**6) == 256
    assert default_learning_rate_multiplier(1) == 0.05 and default_learning_rate_multiplier(64) == 0.2
    assert learning_rate("lora", 0.1) == pytest.approx(2e-4) and learning_rate("full", 0.1) == pytest.approx(2e-5)
    hp = Hyperparameters.resolve(TrainConfig(train="d.jsonl"), n_examples=20)
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (5, 1, 0.05)
    fixed = Hyperparameters.resolve(TrainConfig(train="d.jsonl", n_epochs=2, batch_size=64), n_examples=20)
    assert (fixed.n_epochs, fixed.batch_size) == (2, 20)  # a batch never exceeds the data


def test_train_config_and_the_jobs_api_refuse_the_same_hyperparameters():
    """n_epochs 51 or batch_size 257 is refused by `tunesmith train` as by the API (OpenAI's ranges)."""
    from tunesmith.server.errors import OpenAIError
    from tunesmith.server.jobs_api import Hyperparameters as ApiHyperparameters

    for field, bad, good in (("n_epochs", 51, 50), ("batch_size", 257, 256)):
        with pytest.raises(TrainConfigError, match=f"{field}.*between 1 and"):
            build_config({"train": "d.jsonl", field: bad})
        with pytest.raises(OpenAIError, match=f"{field}.*between 1 and"):
            ApiHyperparameters(**{field: bad}).checked("hyperparameters")
        assert getattr(build_config({"train": "d.jsonl", field: good}), field) == good
        assert ApiHyperparameters(**{field: good}).checked("hyperparameters") == {field: good}


def test_train_help_shows_every_config_field_as_a_flag_with_its_help():
    """`tunesmith train --help` lists each TrainConfig field (alias spelling) with the field's description."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from tunesmith.cli import app; app()", "train", "--help"],
                          capture_output=True, text=True, env={**os.environ, "TERMINAL_WIDTH": "1000"}, check=True)
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│ --")}
    flags = {"training_file": "--train", "validation_file": "--validation", "torch_compile": "--compile"}
    for name, field in TrainConfig.model_fields.items():
        row = rows[flags.get(name, "--" + name.replace("_", "-"))]
        assert field.description and field.description in row, name
    assert "auto|INTEGER" in rows["--n-epochs"] and "lora|qlora|full" in rows["--method"]
    assert "[default: (auto)]" in rows["--batch-size"] and "[default: (16)]" in rows["--lora-r"]
    for own in ("--config", "--resume", "--dry-run", "--provider", "--nproc-per-node"):
        assert own in rows


def test_a_flag_beats_the_config_file_for_every_field(tmp_path):
    """`--truncation` (a field no hand-written flag covered) overrides the YAML's `truncation: reject`."""
    import json

    from typer.testing import CliRunner

    from tests.training.conftest import write_chat_file
    from tunesmith.cli import app

    data = write_chat_file(tmp_path / "train.jsonl", 20)
    long_one = {"messages": [{"role": "user", "content": "Count the words: " + "word " * 200},
                             {"role": "assistant", "content": "200"}]}
    data.write_text(data.read_text() + json.dumps(long_one) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"model: tiny-random\ntrain: {data}\ntruncation: reject\nmax_length: 128\n")
    refused = CliRunner().invoke(app, ["train", "--config", str(config), "--dry-run"])
    assert refused.exit_code == 2 and "truncation: reject" in refused.output
    cut = CliRunner().invoke(app, ["train", "--config", str(config), "--truncation", "truncate", "--dry-run"])
    assert cut.exit_code == 0, cut.output
    assert "max_length: 128; truncated: 1" in cut.output
