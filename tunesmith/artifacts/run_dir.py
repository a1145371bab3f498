"""The run directory: the unit of truth the trainer writes and the jobs server, the API and the UI read.

config.json, data.json, state.json, results.csv, events.jsonl, checkpoints/step-N/, metrics.png and the
final adapter/ (or model/). JSON files are written atomically; results.csv and events.jsonl are append-only
logs, flushed per line, and cut back to the checkpoint on resume. This module is the one writer and the one
reader: every reader tolerates a run that has not started or is half written (a missing file reads as empty).
A job's run directory is `<data dir>/runs/<job id>` (`run_dir_for`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunesmith.paths import atomic_write_text, data_dir
from tunesmith.train_config import TrainConfig

RESULTS_COLUMNS = (
    "step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
    "full_valid_loss", "full_valid_mean_token_accuracy",
)
# A DPO run's results.csv: the loss, and the implicit rewards (beta x log-ratio to the reference) under TRL's names.
DPO_RESULTS_COLUMNS = (
    "step", "train_loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
    "valid_loss", "valid_rewards/accuracies", "valid_rewards/margins",
)
STATUSES = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
_STEP_DIR = re.compile(r"^step-(\d+)$")


StopSignal = Callable[[], Any]  # falsy: go on; "pause": checkpoint and pause; other truthy: checkpoint and cancel
EventSink = Callable[[dict], None]


@dataclass
class RunResult:
    run_dir: Path
    status: str  # succeeded | cancelled | paused | failed
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    trained_tokens: int = 0
    train_loss: float | None = None
    output_dir: Path | None = None  # adapter/ or model/ once succeeded
    error: str | None = None


def new_run_dir(suffix: str | None = None) -> Path:
    """A fresh directory under <data dir>/runs named like an OpenAI job id."""
    name = "ftjob-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    if suffix:
        name += "-" + re.sub(r"[^A-Za-z0-9_.-]", "-", suffix)
    return data_dir() / "runs" / name


def run_dir_for(data_dir: Path, job_id: str) -> Path:
    """A job's run directory under the server's data directory."""
    return Path(data_dir) / "runs" / job_id


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of the run; {} when it is missing or unreadable (not written yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_state(run_dir: Path) -> dict[str, Any]:
    """state.json: status, step, total_steps, epoch, trained_tokens, error, started_at, updated_at
    ({} before the run)."""
    return read_json(Path(run_dir) / "state.json")


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json: the resolved TrainConfig (hyperparameters as numbers) plus what the trainer chose."""
    return read_json(Path(run_dir) / "config.json")


def saved_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig a run was started with, rebuilt from its config.json (the one place that does this)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} is not a run directory (no config.json)")
    return TrainConfig.from_json_dict(read_json(path))


def results_rows(run_dir: Path) -> list[dict[str, str]]:
    """results.csv as written: one dict of strings per row (empty cells "")."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_results(run_dir: Path) -> dict[int, dict[str, float]]:
    """results.csv as {step: {column: value}}, empty cells left out."""
    rows: dict[int, dict[str, float]] = {}
    for row in results_rows(run_dir):
        try:
            step = int(float(row.get("step") or ""))
        except ValueError:
            continue
        rows[step] = {k: float(v) for k, v in row.items() if k != "step" and v not in (None, "")}
    return rows


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """events.jsonl, oldest first; a line being written (or cut short by a crash) is skipped."""
    path = Path(run_dir) / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


@dataclass
class Checkpoint:
    step: int
    path: Path
    created_at: int


def read_reference_logps(run_dir: Path) -> dict[str, list[list[float]]]:
    """What `RunFiles.write_reference_logps` wrote ({} when absent)."""
    return read_json(Path(run_dir) / "reference_logps.json")


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints (`checkpoints/step-N/`, trainer_state.pt written last), oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = []
    for child in root.iterdir() if root.is_dir() else ():
        match = _STEP_DIR.match(child.name)
        if match and (child / "trainer_state.pt").is_file():
            found.append(Checkpoint(int(match.group(1)), child, int(child.stat().st_mtime)))
    return sorted(found, key=lambda c: c.step)


def final_weights_dir(run_dir: Path) -> Path | None:
    """The run's result: `adapter/` (LoRA) or `model/` (full fine-tune); None until training finished."""
    for name in ("adapter", "model"):
        candidate = Path(run_dir) / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


@dataclass
class RunFiles:
    root: Path
    columns: tuple[str, ...] = RESULTS_COLUMNS  # results.csv's (DPO_RESULTS_COLUMNS for a DPO run)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def write_state(self, status: str, **fields: Any) -> dict[str, Any]:
        assert status in STATUSES, status
        state = read_state(self.root)
        state.update(fields, status=status, updated_at=int(time.time()))
        state.setdefault("error", None)
        write_json(self.root / "state.json", state)
        return state

    def read_state(self) -> dict[str, Any]:
        return read_state(self.root)

    def append_result(self, row: dict[str, Any]) -> None:
        path = self.root / "results.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k)) for k in self.columns})

    def truncate_results(self, last_step: int) -> None:
        """Drop rows after `last_step`: a resumed run recomputes them."""
        kept = [r for r in results_rows(self.root) if int(r["step"]) <= last_step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.root / "results.csv", out.getvalue())

    def append_event(self, message: str, *, level: str = "info", type: str = "message", data: Any = None) -> dict:
        """An OpenAI `fine_tuning.job.event` object, appended to events.jsonl and returned."""
        event = {
            "object": "fine_tuning.job.event",
            "id": "ftevent-" + secrets.token_hex(12),
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "data": data if data is not None else {},
            "type": type,
        }
        with open(self.root / "events.jsonl", "a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
        return event

    def write_reference_logps(self, logps: dict[str, list[list[float]]]) -> None:
        """DPO: the reference model's (chosen, rejected) log-probabilities per pair, computed once."""
        atomic_write_text(self.root / "reference_logps.json", json.dumps(logps))

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    def prune_checkpoints(self, keep: int) -> None:
        for old in list_checkpoints(self.root)[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)


class FollowerRunFiles(RunFiles):
    """The run directory as ranks other than 0 of a multi-process run see it: read-only, every write a no-op."""

    def write_state(self, status: str, **fields: Any) -> dict[str, Any]:
        return {**fields, "status": status}

    def append_result(self, row: dict[str, Any]) -> None:
        pass

    def truncate_results(self, last_step: int) -> None:
        pass

    def append_event(self, message: str, *, level: str = "info", type: str = "message", data: Any = None) -> dict:
        return {"object": "fine_tuning.job.event", "level": level, "message": message,
                "data": data if data is not None else {}, "type": type}

    def prune_checkpoints(self, keep: int) -> None:
        pass


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def plot_metrics(run: RunFiles) -> Path | None:
    """metrics.png: loss and token accuracy per step, train and validation."""
    rows = results_rows(run.root)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(column: str) -> tuple[list[int], list[float]]:
        points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
        return [p[0] for p in points], [p[1] for p in points]

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for column, style in (("train_loss", "-"), ("valid_loss", "o-"), ("full_valid_loss", "s--")):
        xs, ys = series(column)
        if xs:
            ax_loss.plot(xs, ys, style, label=column, markersize=3)
    for column, style in (("train_mean_token_accuracy", "-"), ("valid_mean_token_accuracy", "o-"),
                          ("full_valid_mean_token_accuracy", "s--")):
        xs, ys = series(column)
        if xs:
            ax_acc.plot(xs, ys, style, label=column, markersize=3)
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="token accuracy", title="mean token accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = run.root / ".metrics.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(run.root / "metrics.png")
    return run.root / "metrics.png"
