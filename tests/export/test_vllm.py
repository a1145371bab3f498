"""The vLLM export is a PEFT adapter folder PEFT's own loader accepts, naming the base model's hub id and only
modules vLLM carries LoRA on for Llama, with a warning for modules it does not, and the `vllm serve` line."""

from __future__ import annotations

import json

from peft import PeftConfig, PeftModel
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.export.vllm import VLLM_LORA_MODULES, export_vllm, unsupported_module_warnings
from tunesmith.models import build_tiny_model, load_smollm2_tokenizer


def test_vllm_adapter_passes_peft_loader_and_names_only_supported_llama_modules(tmp_path, trained_run):
    run = trained_run("smollm2")
    done = export_vllm(run, tmp_path / "vllm", name="adder")
    config = PeftConfig.from_pretrained(str(done.adapter_dir))
    assert set(config.target_modules) <= VLLM_LORA_MODULES["llama"]
    assert (done.adapter_dir / "adapter_model.safetensors").is_file()
    model = PeftModel.from_pretrained(build_tiny_model(load_smollm2_tokenizer()), str(done.adapter_dir))
    assert sum(1 for n, _ in model.named_parameters() if "lora_A" in n) == 2 * len(config.target_modules)
    assert f"--enable-lora --lora-modules adder={done.adapter_dir.resolve()}" in done.command
    assert done.command.startswith("vllm serve tiny-random ")
    assert any("no Hugging Face id" in w for w in done.warnings)  # tiny-random is not on the hub


def test_catalog_base_becomes_its_hub_id(tmp_path, trained_run):
    run = trained_run("smollm2")
    meta = run / "adapter" / "tunesmith.json"
    saved = meta.read_text()
    try:
        meta.write_text(json.dumps({**json.loads(saved), "base_model": "smollm2-135m-instruct"}))
        done = export_vllm(run, tmp_path / "vllm")
    finally:
        meta.write_text(saved)
    assert json.loads((done.adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert done.command.startswith("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora")
    assert done.warnings == []


def test_modules_vllm_cannot_serve_are_warned_about():
    config = {"target_modules": ["q_proj", "input_layernorm"], "modules_to_save": ["score"], "bias": "none"}
    warnings = unsupported_module_warnings(config, "llama")
    assert any("'input_layernorm'" in w for w in warnings) and not any("'q_proj'" in w for w in warnings)
    assert any("modules_to_save" in w for w in warnings)
    assert unsupported_module_warnings({"target_modules": ["qkv_proj", "o_proj"]}, "phi3") == []


def test_cli_prints_the_serve_line(tmp_path, trained_run):
    result = CliRunner().invoke(app, ["export", str(trained_run("smollm2")), "--format", "vllm",
                                      "--output", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert "vllm serve" in result.output and "--enable-lora --lora-modules" in result.output
    assert (tmp_path / "v" / "chat_template.jinja").read_text()
