"""Every open-weight family of the catalog trains: tiny random Llama 2, Llama 3.1, Phi-3 and SmolLM2 models
with their real chat templates train, save, reload and chat."""

import json

import pytest
import torch

from tests.training.conftest import write_chat_file
from tunesmith.models import load_model
from tunesmith.train_config import TrainConfig
from tunesmith.training.sft import train

EXPECTED_TARGETS = {
    "llama2": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "llama3": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "smollm2": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},  # fused projections
}


@pytest.mark.parametrize("family", ["llama2", "llama3", "phi3", "smollm2"])
def test_family_trains_saves_reloads_and_chats(tmp_path, family_model_dir, family):
    base = family_model_dir(family)
    data = write_chat_file(tmp_path / "train.jsonl", 10)
    result = train(TrainConfig(model=str(base), train=data, n_epochs=1, batch_size=5, output=tmp_path / "run"))
    assert result.status == "succeeded"

    adapter_config = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == EXPECTED_TARGETS[family]
    assert json.loads((result.output_dir / "tunesmith.json").read_text())["base_model"] == str(base.resolve())

    loaded = load_model(str(result.run_dir))
    assert loaded.adapter_dir == result.output_dir
    assert loaded.tokenizer.chat_template == load_model(str(base), load_weights=False).tokenizer.chat_template
    inputs = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 2?"}], add_generation_prompt=True, tokenize=False)
    ids = loaded.tokenizer(inputs, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**ids, max_new_tokens=5, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]  # it answers (random weights: the words are noise)
