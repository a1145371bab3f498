"""`/fine_tuning/jobs`: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import re
from typing import Any, Literal, Union

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tunesmith.hparams import BETA_RANGE, LIMITS, limit_error
from tunesmith.jobs.lifecycle import (JobError, JobRequest, cancel_job, create_job, pause_job, resume_job,
                                      validate_job_files)
from tunesmith.artifacts.run_dir import run_dir_for
from tunesmith.jobs.store import JobRecord
from tunesmith.server.errors import OpenAIError
from tunesmith.server.openai_objects import checkpoint_objects, cursor_page, event_objects, job_object
from tunesmith.server.settings import ServerState, server_state

router = APIRouter(tags=["fine-tuning"])

Auto = Literal["auto"]
# strict: `n_epochs: true` or `"3"` is an error, not a guess; no NaN or Infinity in any float
STRICT = ConfigDict(strict=True, allow_inf_nan=False)
MAX_LEARNING_RATE_MULTIPLIER = 10.0  # the "auto" choice is 0.05-0.2: past 10x the run only diverges
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: "a\n" is not a suffix


class Hyperparameters(BaseModel):
    model_config = STRICT
    batch_size: Union[Auto, int] = Field("auto", description="'auto' or {}-{}".format(*LIMITS["batch_size"]))
    learning_rate_multiplier: Union[Auto, float] = Field(
        "auto", description=f"'auto' or a number > 0 and <= {MAX_LEARNING_RATE_MULTIPLIER:g}")
    n_epochs: Union[Auto, int] = Field("auto", description="'auto' or {}-{}".format(*LIMITS["n_epochs"]))

    def checked(self, param: str) -> dict[str, Any]:
        for name in ("batch_size", "n_epochs", "learning_rate_multiplier"):  # TrainConfig checks the same limits
            value = getattr(self, name)
            problem = limit_error(name, value)
            if problem:
                raise OpenAIError(400, f"{param}.{name} {problem}; got {value}", param=f"{param}.{name}",
                                  code="invalid_value")
        lrm = self.learning_rate_multiplier
        if lrm != "auto" and not 0 < lrm <= MAX_LEARNING_RATE_MULTIPLIER:
            raise OpenAIError(400, f"{param}.learning_rate_multiplier must be 'auto' or > 0 and <= "
                                   f"{MAX_LEARNING_RATE_MULTIPLIER:g}; got {lrm:g}",
                              param=f"{param}.learning_rate_multiplier", code="invalid_value")
        return self.model_dump(exclude_unset=True)


class DpoHyperparameters(Hyperparameters):
    beta: Union[Auto, float] = Field("auto", description="'auto' or a number > {:g} and <= {:g}".format(*BETA_RANGE))

    def checked(self, param: str) -> dict[str, Any]:
        problem = limit_error("beta", self.beta)
        if problem:
            raise OpenAIError(400, f"{param}.beta {problem}; got {self.beta}", param=f"{param}.beta",
                              code="invalid_value")
        return super().checked(param)


class SupervisedMethod(BaseModel):
    model_config = STRICT
    hyperparameters: Hyperparameters | None = None


class DpoMethod(BaseModel):
    model_config = STRICT
    hyperparameters: DpoHyperparameters | None = None


class Method(BaseModel):
    model_config = STRICT
    type: Literal["supervised", "dpo", "reinforcement"] = "supervised"
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None


class CreateJob(BaseModel):
    model_config = ConfigDict(**STRICT, extra="allow")  # integrations and newer fields are accepted and ignored
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = Field(None, description="deprecated: use method.supervised")
    method: Method | None = None
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, le=2_147_483_647)
    metadata: dict[str, str] | None = None

    def to_request(self) -> JobRequest:
        if self.method is not None and self.method.type not in ("supervised", "dpo"):
            raise OpenAIError(400, f"method.type '{self.method.type}' is not supported here; use 'supervised' or "
                              "'dpo'", param="method.type", code="unsupported_method")
        hp: dict[str, Any] = self.hyperparameters.checked("hyperparameters") if self.hyperparameters else {}
        kind = self.method.type if self.method is not None else "supervised"
        chosen = getattr(self.method, kind, None) if self.method is not None else None
        if chosen is not None and chosen.hyperparameters is not None:
            hp.update(chosen.hyperparameters.checked(f"method.{kind}.hyperparameters"))
        if kind == "dpo":
            hp["method"] = "dpo"
        if self.suffix is not None and not _SUFFIX.fullmatch(self.suffix):
            raise OpenAIError(400, "suffix must be 1-64 characters of letters, digits, '.', '_' or '-'",
                              param="suffix", code="invalid_value")
        if self.metadata and (len(self.metadata) > 16 or any(len(k) > 64 or len(v) > 512
                                                             for k, v in self.metadata.items())):
            raise OpenAIError(400, "metadata holds at most 16 pairs, keys up to 64 and values up to 512 characters",
                              param="metadata", code="invalid_value")
        return JobRequest(model=self.model, training_file=self.training_file, validation_file=self.validation_file,
                          hyperparameters=hp, suffix=self.suffix, seed=self.seed, metadata=self.metadata)


@router.post("/fine_tuning/jobs")
def create(request: Request, body: CreateJob) -> dict[str, Any]:
    state = server_state(request)
    job = _call(create_job, state.store, body.to_request())
    start_validation(state, job.id)
    return job_object(job, state.data_dir)


def start_validation(state: ServerState, job_id: str) -> None:
    """Validate in the background: the create call answers at once with status `validating_files`."""
    state.validator.submit(validate_job_files, state.store, state.data_dir, job_id)


@router.get("/fine_tuning/jobs")
def list_jobs(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    state = server_state(request)
    metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                if k.startswith("metadata[") and k.endswith("]")}
    jobs, has_more = state.store.list_jobs(after=after, limit=limit, metadata=metadata or None)
    return {"object": "list", "data": [job_object(j, state.data_dir) for j in jobs], "has_more": has_more}


@router.get("/fine_tuning/jobs/{job_id}")
def retrieve(request: Request, job_id: str) -> dict[str, Any]:
    state = server_state(request)
    return job_object(_job(state, job_id), state.data_dir)


@router.post("/fine_tuning/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: str) -> dict[str, Any]:
    state = server_state(request)
    return job_object(_call(cancel_job, state.store, job_id), state.data_dir)


@router.post("/fine_tuning/jobs/{job_id}/pause")
def pause(request: Request, job_id: str) -> dict[str, Any]:
    state = server_state(request)
    return job_object(_call(pause_job, state.store, job_id), state.data_dir)


@router.post("/fine_tuning/jobs/{job_id}/resume")
def resume(request: Request, job_id: str) -> dict[str, Any]:
    state = server_state(request)
    return job_object(_call(resume_job, state.store, job_id), state.data_dir)


@router.get("/fine_tuning/jobs/{job_id}/events")
def events(request: Request, job_id: str, after: str | None = None,
           limit: int = Query(20, ge=1, le=10_000)) -> dict[str, Any]:
    state = server_state(request)
    job = _job(state, job_id)
    items = event_objects(state.store.list_events(job.id), run_dir_for(state.data_dir, job.id), state.data_dir)
    return cursor_page(items, after, limit)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
def checkpoints(request: Request, job_id: str, after: str | None = None,
                limit: int = Query(10, ge=1, le=1000)) -> dict[str, Any]:
    state = server_state(request)
    return cursor_page(checkpoint_objects(_job(state, job_id), state.data_dir), after, limit, with_ids=True)


def _job(state: ServerState, job_id: str) -> JobRecord:
    job = state.store.get_job(job_id)
    if job is None:
        raise OpenAIError(404, f"No such fine-tuning job: '{job_id}'", param="fine_tuning_job_id",
                          code="fine_tuning_job_not_found")
    return job


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except JobError as e:
        raise OpenAIError(e.status, e.message, param=e.param, code=e.code) from None
