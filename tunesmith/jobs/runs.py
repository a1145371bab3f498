"""Reading a job's run directory (written by the trainer; see the Training contract in docs/architecture.md).

A job's run directory is `<data dir>/runs/<job id>`. Nothing here writes to it: the trainer owns it.
Every reader tolerates a run that has not started or is half written (a missing file reads as empty).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.training.rundir import read_events  # noqa: F401  (re-exported: the API reads events here)

_STEP_DIR = re.compile(r"^step-(\d+)$")


def run_dir_for(data_dir: Path, job_id: str) -> Path:
    return Path(data_dir) / "runs" / job_id


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_state(run_dir: Path) -> dict[str, Any]:
    """state.json: status, step, total_steps, epoch, trained_tokens, error, updated_at ({} before the run)."""
    return read_json(Path(run_dir) / "state.json")


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json: the resolved TrainConfig (hyperparameters as numbers)."""
    return read_json(Path(run_dir) / "config.json")


def read_results(run_dir: Path) -> dict[int, dict[str, float]]:
    """results.csv as {step: {column: value}}, empty cells left out."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        return {}
    rows: dict[int, dict[str, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = int(float(row.get("step") or ""))
            except ValueError:
                continue
            rows[step] = {k: float(v) for k, v in row.items() if k != "step" and v not in (None, "")}
    return rows


@dataclass
class Checkpoint:
    step: int
    path: Path
    created_at: int


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Saved checkpoints (`checkpoints/step-N/`), highest step first."""
    root = Path(run_dir) / "checkpoints"
    found = []
    for child in root.iterdir() if root.is_dir() else ():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and not child.name.startswith("."):
            found.append(Checkpoint(int(match.group(1)), child, int(child.stat().st_mtime)))
    return sorted(found, key=lambda c: c.step, reverse=True)


def final_weights_dir(run_dir: Path) -> Path | None:
    """The run's result: `adapter/` (LoRA) or `model/` (full fine-tune); None until training finished."""
    for name in ("adapter", "model"):
        candidate = Path(run_dir) / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None
