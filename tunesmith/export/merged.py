"""`tunesmith export RUN --merged OUT`: one safetensors model folder plain transformers loads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tunesmith.models import load_model


def export_merged(run_dir: Path | str, out: Path | str) -> Path:
    """Merge the run's adapter into its base model (or copy a full fine-tune) and save it, with the tokenizer
    and its exact chat template, to `out`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    loaded = load_model(str(run_dir))
    model = loaded.model
    if loaded.adapter_dir is not None:
        model = model.merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(tmp))
    # llama.cpp's converter reads SentencePiece vocabularies (Phi-3, Llama 2) from tokenizer.model, which a fast
    # tokenizer does not always write back: copy the one it was loaded from
    vocab_file = getattr(loaded.tokenizer, "vocab_file", None)
    if vocab_file and Path(vocab_file).is_file() and not (tmp / "tokenizer.model").exists():
        shutil.copy2(vocab_file, tmp / "tokenizer.model")
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out
