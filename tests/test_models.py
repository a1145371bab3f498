"""Every loader path: catalog id, GGUF (+ its cache), local HF dir, adapter dir, hub id offline, bad refs."""

import time
from pathlib import Path

import pytest
import torch

from tunesmith.models import (
    ModelLoadError,
    build_tiny_model,
    convert_smollm2_gguf,
    ensure_pad_token,
    load_model,
    smollm2_gguf_path,
)


def _greedy_reply(loaded, text="Hello", n=5):
    inputs = loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=n, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id)
    return out[0][inputs["input_ids"].shape[1]:]


def test_tiny_random_builds_fast_and_chats(tiny):
    start = time.perf_counter()
    again = load_model("tiny-random")
    assert time.perf_counter() - start < 2.0
    assert again.model.config.model_type == "llama"
    assert "<|im_start|>" in tiny.chat_template
    assert len(_greedy_reply(tiny)) > 0


def test_pad_token_is_never_eos(tiny):
    assert tiny.tokenizer.pad_token_id != tiny.tokenizer.eos_token_id
    assert tiny.model.config.pad_token_id == tiny.tokenizer.pad_token_id


def test_ensure_pad_token_replaces_pad_equal_to_eos(tiny):
    tok = tiny.tokenizer
    tok.pad_token = tok.eos_token
    ensure_pad_token(tok)
    assert tok.pad_token != tok.eos_token


def test_phi3_tiny_model_has_fused_projections(tiny):
    model = build_tiny_model(tiny.tokenizer, family="phi3")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert {"qkv_proj", "gate_up_proj"} <= names
    with pytest.raises(ValueError):
        build_tiny_model(tiny.tokenizer, family="nope")


def test_smollm2_gguf_is_converted_once_and_cached_as_safetensors():
    first = convert_smollm2_gguf()
    assert (first / "model.safetensors").is_file()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert convert_smollm2_gguf() == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime  # not rewritten


def test_smollm2_default_model_loads_offline_and_answers():
    loaded = load_model("smollm2-135m-instruct")
    assert loaded.spec.id == "smollm2-135m-instruct"
    assert loaded.context_length == 8192
    reply = loaded.tokenizer.decode(_greedy_reply(loaded, "What is the capital of France?", 8),
                                    skip_special_tokens=True)
    assert "Paris" in reply


def test_gguf_file_path_and_local_dir_load(tmp_path):
    by_file = load_model(str(smollm2_gguf_path()), load_weights=False)
    assert by_file.tokenizer.eos_token == "<|im_end|>"
    by_dir = load_model(str(convert_smollm2_gguf()), load_weights=False)
    assert Path(by_dir.source).is_dir()


def test_adapter_dir_loads_over_its_base(tiny, tmp_path):
    import json

    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(build_tiny_model(tiny.tokenizer), LoraConfig(r=4, target_modules=["q_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "tunesmith.json").write_text(json.dumps({"base_model": "tiny-random"}))
    loaded = load_model(str(tmp_path))  # a run directory holding adapter/
    assert loaded.adapter_dir == tmp_path / "adapter"
    assert type(loaded.model).__name__.startswith("Peft")


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no-such-model", "unknown model"),
        ("./missing/model.gguf", "GGUF file not found"),
        ("./missing-dir/", "not found"),
        ("gpt-35-turbo-0125", "provider"),
    ],
)
def test_bad_references_give_clear_errors(ref, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(ref)


def test_hub_id_while_offline_says_it_needs_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="needs the network"):
        load_model("someone/not-downloaded-model-xyz", load_weights=False)


def test_empty_directory_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match="neither config.json nor a PEFT adapter"):
        load_model(str(tmp_path))
