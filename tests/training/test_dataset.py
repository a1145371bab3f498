"""The over-long-example policy and the loss-mask guard."""

import json

import pytest

from tests.training.conftest import write_chat_file
from tunesmith.models import load_smollm2_tokenizer
from tunesmith.train_config import TrainConfig
from tunesmith.training.dataset import DataValidationError, _check_loss_mask, prepare_data
from tunesmith.training.render import TokenizedExample


def long_file(tmp_path):
    path = write_chat_file(tmp_path / "train.jsonl", 12)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["messages"][1]["content"] += " padding words" * 40  # the one long example
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_long_examples_are_cut_with_a_warning(tmp_path):
    data = prepare_data(TrainConfig(train=long_file(tmp_path), max_length=80), load_smollm2_tokenizer(), 2048)
    assert data.n_truncated == 1 and data.n_dropped == 1  # cut before its answer: nothing left to train
    assert any("longer than max_length=80" in w for w in data.warnings)
    assert len(data.train) == 11 and all(len(e) <= 80 for e in data.train)


def test_truncation_reject_refuses_long_examples(tmp_path):
    config = TrainConfig(train=long_file(tmp_path), max_length=80, truncation="reject")
    with pytest.raises(DataValidationError, match="example 1 is longer than max_length=80"):
        prepare_data(config, load_smollm2_tokenizer(), 2048)


def test_every_token_trained_is_refused(tmp_path):
    with pytest.raises(DataValidationError, match="every token carries loss"):
        _check_loss_mask(tmp_path / "x.jsonl", [TokenizedExample([1, 2, 3], [True, True, True])])
