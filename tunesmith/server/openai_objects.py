"""OpenAI's objects, field for field, built from store records and the job's run directory.

Every field the OpenAI spec marks required is always present (null where unknown), so the official SDK
parses these unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tunesmith.jobs.lifecycle import HYPERPARAMETERS, fine_tuned_model_name
from tunesmith.artifacts.run_dir import list_checkpoints, read_config, read_events, read_results, read_state, run_dir_for
from tunesmith.jobs.store import EventRecord, FileRecord, JobRecord
from tunesmith.server.errors import hide_server_paths

ORGANIZATION = "org-tunesmith"  # a local server has one organization; the field is required


def file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id, "object": "file", "bytes": record.bytes, "created_at": record.created_at,
        "filename": record.filename, "purpose": record.purpose, "status": record.status,
        "status_details": record.status_details, "expires_at": None,
    }


def job_object(job: JobRecord, data_dir: Path) -> dict[str, Any]:
    run_dir = run_dir_for(data_dir, job.id)
    hp = resolved_hyperparameters(job.hyperparameters, read_config(run_dir))
    trained_tokens = job.trained_tokens
    if trained_tokens is None and job.status in ("running", "paused"):
        trained_tokens = read_state(run_dir).get("trained_tokens")
    return {
        "id": job.id, "object": "fine_tuning.job", "created_at": job.created_at, "finished_at": job.finished_at,
        "model": job.model, "fine_tuned_model": job.fine_tuned_model, "organization_id": ORGANIZATION,
        "status": job.status, "training_file": job.training_file, "validation_file": job.validation_file,
        "result_files": list(job.result_files or []), "trained_tokens": trained_tokens,
        "hyperparameters": hp, "method": method_object(job.hyperparameters, hp, read_config(run_dir)),
        "error": _shown_error(job.error, data_dir), "seed": job.seed, "estimated_finish": estimated_finish(job, run_dir),
        "integrations": [], "metadata": job.job_metadata, "user_provided_suffix": job.suffix,
    }


def _shown_error(error: dict[str, Any] | None, data_dir: Path) -> dict[str, Any] | None:
    """The job's error as a client sees it: a crash naming a run-dir or upload path names it in the data dir."""
    if not error or not isinstance(error.get("message"), str):
        return error
    return {**error, "message": hide_server_paths(error["message"], data_dir)}


def method_object(requested: dict[str, Any], hp: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `method`: {"type": "supervised" | "dpo", <type>: {"hyperparameters": ...}}."""
    if requested.get("method") != "dpo":
        return {"type": "supervised", "supervised": {"hyperparameters": hp}}
    beta = config.get("beta") if config.get("beta") not in (None, "auto") else requested.get("beta", "auto")
    return {"type": "dpo", "dpo": {"hyperparameters": {**hp, "beta": beta}}}


def resolved_hyperparameters(requested: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The numbers the trainer chose (config.json) once it started; what was asked for ("auto") before."""
    return {k: config.get(k) if config.get(k) not in (None, "auto") else requested.get(k, "auto")
            for k in HYPERPARAMETERS}


def estimated_finish(job: JobRecord, run_dir: Path) -> int | None:
    """Linear extrapolation of the steps done since training (re)started, not counting time in the queue or
    loading the model; None until a step has finished."""
    if job.status != "running":
        return None
    state = read_state(run_dir)
    step, total, updated = state.get("step"), state.get("total_steps"), state.get("updated_at")
    started, done = state.get("started_at"), (step or 0) - (state.get("started_step") or 0)
    if done <= 0 or not total or not isinstance(updated, (int, float)) or not isinstance(started, (int, float)):
        return None
    return int(updated + (updated - started) / done * (total - step))


def event_objects(store_events: list[EventRecord], run_dir: Path, data_dir: Path | None = None) -> list[dict[str, Any]]:
    """The job's lifecycle events (store) and training events (run dir) in one list, newest first; a message
    naming a path in the data dir names it relative to it (`--resume <data dir>/runs/ftjob-…`)."""
    keyed: list[tuple[bool, int, int, dict[str, Any]]] = [
        (False, e.created_at, e.phase, {"object": "fine_tuning.job.event", "id": e.id, "created_at": e.created_at,
                                        "level": e.level, "message": e.message, "data": e.data, "type": e.type})
        for e in store_events
    ]
    for e in read_events(run_dir):
        e = {"object": "fine_tuning.job.event", "level": "info", "data": None, "type": "message", **e}
        final = isinstance(e.get("data"), dict) and bool(e["data"].get("final"))
        keyed.append((final, int(e.get("created_at") or 0), 1, e))
    keyed.sort(key=lambda k: k[:3])  # stable: each source keeps its own order within a second
    return [{**e, "message": hide_server_paths(str(e.get("message") or ""), data_dir)} for *_, e in reversed(keyed)]


def checkpoint_objects(job: JobRecord, data_dir: Path) -> list[dict[str, Any]]:
    """Saved checkpoints, highest step first, with their step's row of results.csv as metrics."""
    run_dir = run_dir_for(data_dir, job.id)
    results = read_results(run_dir)
    model = job.fine_tuned_model or fine_tuned_model_name(job.model, job.suffix, job.id)
    return [
        {
            "id": checkpoint_id(job.id, c.step), "object": "fine_tuning.job.checkpoint", "created_at": c.created_at,
            "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{c.step}", "fine_tuning_job_id": job.id,
            "step_number": c.step, "metrics": {"step": float(c.step), **results.get(c.step, {})},
        }
        for c in reversed(list_checkpoints(run_dir))
    ]


def checkpoint_id(job_id: str, step: int) -> str:
    """Stable across requests (derived, not stored): the run directory is the record of checkpoints."""
    return "ftckpt-" + hashlib.sha256(f"{job_id}:{step}".encode()).hexdigest()[:24]


def model_object(model_id: str, created: int, owned_by: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by, **extra}


def cursor_page(items: list[dict[str, Any]], after: str | None, limit: int, *,
                with_ids: bool = False) -> dict[str, Any]:
    """An OpenAI cursor page of `items` (already in order): the `limit` items after the one whose id is `after`."""
    start = 0
    if after:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
    data = items[start:start + limit]
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": start + limit < len(items)}
    if with_ids:
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    return page
