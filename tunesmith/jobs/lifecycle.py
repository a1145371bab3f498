"""A fine-tuning job's life outside the worker: create, validate its files, cancel, pause, resume.

Status moves validating_files → queued → running → succeeded | failed | cancelled (and running ⇄ paused).
The worker (worker.py) takes it from `queued`. Everything here raises `JobError` with OpenAI's
`param`/`code`, which the API turns into its error shape.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.catalog import closed_status_line, find_model_spec
from tunesmith.jobs.files import describe_errors, file_path
from tunesmith.jobs.store import TERMINAL, JobRecord, JobStore, new_id, now

HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
# A DPO job's record keeps `method: "dpo"` and `beta` beside them (TrainConfig's names: the worker passes them on).
DPO_HYPERPARAMETERS = ("beta",)
_SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JobError(Exception):
    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


@dataclass
class JobRequest:
    """The body of `POST /fine_tuning/jobs` once parsed; `hyperparameters` merges `method.supervised` over the
    older top-level field."""

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None


def fine_tuned_model_name(base: str, suffix: str | None, job_id: str) -> str:
    """`ft:<base>:<suffix>:<id>`; the id part is the job id's random part, so the name leads back to the job.
    Continued fine-tuning of `ft:<base>:…` keeps the same `<base>`."""
    if base.startswith("ft:"):
        base = base.split(":")[1]
    return f"ft:{base}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"


def job_id_from_model_name(name: str) -> str | None:
    """The job behind `ft:<base>:<suffix>:<id>` (or its `:ckpt-step-N` checkpoint); None if not such a name."""
    parts = name.split(":")
    if len(parts) not in (4, 5) or parts[0] != "ft" or (len(parts) == 5 and not parts[4].startswith("ckpt-step-")):
        return None
    return "ftjob-" + parts[3]


def served_model(model: str) -> str:
    """The catalog model that plays `model` on this server. TUNESMITH_MODEL_ALIASES="gpt-35-turbo-0125=tiny-random"
    lets a test server stand in for a provider: its jobs and chats on that name run on the local model."""
    pairs = (p.split("=", 1) for p in os.environ.get("TUNESMITH_MODEL_ALIASES", "").split(",") if "=" in p)
    return {k.strip(): v.strip() for k, v in pairs}.get(model, model)


def root_base_model(store: JobStore, model: str) -> str:
    """The catalog model under `model`, following fine-tuned models back to where they started."""
    seen = 0
    while model.startswith("ft:") and seen < 32:
        job_id = job_id_from_model_name(model)
        job = store.get_job(job_id) if job_id else None
        if job is None:
            break
        model, seen = job.model, seen + 1
    return served_model(model)


def create_job(store: JobStore, request: JobRequest) -> JobRecord:
    """Check the request, record the job as `validating_files`; call `validate_job_files` next."""
    _check_model(store, request.model)
    _check_file(store, request.training_file, "training_file")
    if request.validation_file:
        _check_file(store, request.validation_file, "validation_file")
    if request.suffix is not None and not _SUFFIX.match(request.suffix):
        raise JobError("suffix must be 1-64 characters of letters, digits, '.', '_' or '-'", param="suffix",
                       code="invalid_value")
    hp = {k: request.hyperparameters.get(k, "auto") for k in HYPERPARAMETERS}
    if request.hyperparameters.get("method") == "dpo":
        hp.update(method="dpo", **{k: request.hyperparameters.get(k, "auto") for k in DPO_HYPERPARAMETERS})
    job = JobRecord(
        id=new_id("ftjob-"), model=request.model, training_file=request.training_file,
        validation_file=request.validation_file or None, hyperparameters=hp, suffix=request.suffix,
        seed=request.seed if request.seed is not None else secrets.randbelow(2_147_483_648),
        job_metadata=request.metadata, status="validating_files", created_at=now(), result_files=[], attempts=0,
    )
    store.add_job(job)
    store.add_event(job.id, f"Created fine-tuning job: {job.id}")
    return job


def validate_job_files(store: JobStore, data_dir: Path, job_id: str) -> JobRecord:
    """Validate the job's files against its model; move it to `queued`, or to `failed` with OpenAI's error."""
    from tunesmith.data.validate import validate_file

    job = store.get_job(job_id)
    if job is None or job.status != "validating_files":
        return job
    names = f"training file: {job.training_file}" + (
        f" and validation file: {job.validation_file}" if job.validation_file else "")
    store.add_event(job.id, f"Validating {names}")
    error = None
    try:
        train_path = _existing_file_path(store, data_dir, job.training_file, "training_file")
        valid_path = (_existing_file_path(store, data_dir, job.validation_file, "validation_file")
                      if job.validation_file else None)
        report = validate_file(train_path, model=root_base_model(store, job.model), validation=valid_path,
                               method=job.hyperparameters.get("method") or "supervised")
        if not report.ok:
            error = _file_error(report.to_dict()["errors"], report.n_examples, job,
                                {str(train_path): job.training_file, str(valid_path): job.validation_file})
    except JobError as e:
        error = {"code": e.code or "invalid_file", "param": e.param, "message": e.message}
    except Exception as e:  # the validator could not read the file at all: still a data problem, not a crash
        error = {"code": "invalid_training_file", "param": "training_file", "message": f"{type(e).__name__}: {e}"}
    if error is not None:
        store.update_job(job.id, expect_status=("validating_files",), status="failed", error=error,
                         finished_at=now())
        store.add_event(job.id, error["message"], level="error")
    elif store.update_job(job.id, expect_status=("validating_files",), status="queued"):
        store.add_event(job.id, "Files validated, moving job to queued state")
    return store.get_job(job.id)


# The validator's codes where OpenAI's API has its own name for the same failure.
_OPENAI_CODES = {"too_few_examples": "invalid_n_examples", "empty_file": "invalid_n_examples"}


def _file_error(errors: list[dict], n_examples: int, job: JobRecord, names: dict[str, str | None]) -> dict:
    """OpenAI's job error for a bad training file; server paths in messages become file ids."""
    first = errors[0].get("code") or "invalid_training_file"
    code = _OPENAI_CODES.get(first, first)
    if code == "invalid_n_examples":
        message = f"Training file has {n_examples} example(s), but must have at least 10 examples"
    else:
        message = f"The job failed due to an invalid training file ({job.training_file}). {describe_errors(errors)}"
    for path, file_id in names.items():
        if file_id:
            message = message.replace(path, file_id)
    return {"code": code, "param": "training_file", "message": message}


def cancel_job(store: JobStore, job_id: str) -> JobRecord:
    job = _get(store, job_id)
    if job.status in TERMINAL:
        raise JobError(f"Job {job_id} has already {'been ' if job.status == 'cancelled' else ''}{job.status}",
                       param="fine_tuning_job_id", code="job_already_finished")
    # Not running: nothing to stop, cancel now. Running: the worker stops at its next step and checkpoints.
    if store.update_job(job_id, expect_status=("validating_files", "queued", "paused"), status="cancelled",
                        finished_at=now(), control=None):
        store.add_event(job_id, "The job was cancelled")
    else:
        store.update_job(job_id, expect_status=("running",), control="cancel")
        store.add_event(job_id, "Cancellation requested; the job stops after the current step")
    return _get(store, job_id)


def pause_job(store: JobStore, job_id: str) -> JobRecord:
    job = _get(store, job_id)
    if job.status == "paused":
        return job
    if store.update_job(job_id, expect_status=("queued",), status="paused", control=None):
        store.add_event(job_id, "The job was paused")
    elif store.update_job(job_id, expect_status=("running",), control="pause"):
        store.add_event(job_id, "Pause requested; the job checkpoints and pauses after the current step")
    else:
        raise JobError(f"Job {job_id} is {job.status}; only a queued or running job can be paused",
                       param="fine_tuning_job_id", code="invalid_job_status")
    return _get(store, job_id)


def resume_job(store: JobStore, job_id: str) -> JobRecord:
    job = _get(store, job_id)
    if store.update_job(job_id, expect_status=("paused",), status="queued", control=None, worker_id=None):
        store.add_event(job_id, "The job was resumed, moving job to queued state")
    elif job.status == "running" and job.control == "pause":  # paused before the worker got to it: undo
        store.update_job(job_id, expect_status=("running",), control=None)
    else:
        raise JobError(f"Job {job_id} is {job.status}; only a paused job can be resumed",
                       param="fine_tuning_job_id", code="invalid_job_status")
    return _get(store, job_id)


def _get(store: JobStore, job_id: str) -> JobRecord:
    job = store.get_job(job_id)
    if job is None:
        raise JobError(f"No such fine-tuning job: '{job_id}'", param="fine_tuning_job_id",
                       code="fine_tuning_job_not_found", status=404)
    return job


def _check_model(store: JobStore, model: str) -> None:
    if model.startswith("ft:"):
        job_id = job_id_from_model_name(model)
        job = store.get_job(job_id) if job_id else None
        if job is None or job.status != "succeeded" or job.model_deleted or ":ckpt-step-" in model:
            raise JobError(f"The model `{model}` does not exist or is not a finished fine-tuned model",
                           param="model", code="model_not_found")
        return
    spec = find_model_spec(served_model(model))
    if spec is None:
        raise JobError(f"The model `{model}` is not in the catalog (see `tunesmith models`)", param="model",
                       code="model_not_found")
    if not spec.local:  # a closed provider model says so with the catalog's dated line, as `tunesmith train` does
        closed = closed_status_line(spec)
        raise JobError(f"The model `{model}` trains through its provider's API, not on this server; pick an "
                       "open-weight model" + (f". {closed}" if closed else ""), param="model",
                       code="model_not_available")


def _check_file(store: JobStore, file_id: str, param: str) -> None:
    record = store.get_file(file_id)
    if record is None:
        raise JobError(f"invalid {param}: no such file '{file_id}'", param=param, code="invalid_file")
    if record.purpose != "fine-tune":
        raise JobError(f"invalid {param}: file '{file_id}' has purpose '{record.purpose}', not 'fine-tune'",
                       param=param, code="invalid_file_purpose")


def _existing_file_path(store: JobStore, data_dir: Path, file_id: str, param: str) -> Path:
    record = store.get_file(file_id)
    path = file_path(data_dir, record) if record is not None else None
    if path is None or not path.is_file():
        raise JobError(f"The {param.replace('_', ' ')} {file_id} was deleted before the job started", param=param,
                       code="invalid_file")
    return path
