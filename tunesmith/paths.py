"""Where tunesmith keeps things on disk (XDG conventions, overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Converted models, tokenizers, retrieval indexes. TUNESMITH_CACHE overrides."""
    root = os.environ.get("TUNESMITH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tunesmith"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Server state: uploaded files, job store, run directories. TUNESMITH_HOME overrides."""
    root = os.environ.get("TUNESMITH_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "tunesmith"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
