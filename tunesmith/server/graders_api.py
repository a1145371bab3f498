"""`/fine_tuning/alpha/graders/run` and `/validate`: OpenAI's grader objects, run here (evaluate/openai_graders.py).

    client.fine_tuning.alpha.graders.run(grader={...}, model_sample="Paris", item={"city": "Paris"})

A model grader's `model` is resolved as chat completions resolve theirs (a base model on this machine, or a
`ft:…` model this server trained), or is a configured provider's `provider:NAME:MODEL`; a client never makes the
server load an arbitrary path. A `python` grader runs in a child process with no network and a timeout.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Body, Request

from tunesmith.evaluate.model_reply import PROVIDER_PREFIX
from tunesmith.evaluate.openai_graders import OpenAIGraderError, grade_sample, sub_graders, validate_grader
from tunesmith.server.errors import OpenAIError
from tunesmith.server.models_api import resolve_model
from tunesmith.server.settings import ServerState, server_state

router = APIRouter(tags=["graders"])


@router.post("/fine_tuning/alpha/graders/validate")
def validate(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """`{"grader": …}` back when it can run here; a 400 naming the field when it cannot."""
    grader = _checked(body)
    _local_models(server_state(request), grader)
    return {"grader": grader}


@router.post("/fine_tuning/alpha/graders/run")
def run(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Grade `model_sample` (the `sample` namespace) against `item`: OpenAI's `{reward, metadata, sub_rewards, …}`."""
    grader = _checked(body)
    sample = body.get("model_sample")
    if not isinstance(sample, str):
        raise OpenAIError(400, "model_sample must be a string (the model output to grade)", param="model_sample")
    names = _local_models(server_state(request), grader)
    local = copy.deepcopy(grader)
    for spec in _model_graders(local):
        spec["model"] = names[spec["model"]]
    response = grade_sample(local, sample, body.get("item")).response()
    return _client_names(response, {ref: name for name, ref in names.items()})


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_grader(body.get("grader"), "grader")
    except OpenAIGraderError as e:
        raise OpenAIError(400, str(e), param=e.param, code="invalid_grader") from None


def _model_graders(grader: dict[str, Any]) -> list[dict[str, Any]]:
    specs = list(sub_graders(grader).values()) if grader["type"] == "multi" else [grader]
    return [s for s in specs if s["type"] in ("score_model", "label_model")]


def _local_models(state: ServerState, grader: dict[str, Any]) -> dict[str, str]:
    """Each model grader's `model` -> what `load_model` loads (an adapter folder or a base model id)."""
    names: dict[str, str] = {}
    for spec in _model_graders(grader):
        name = spec["model"]
        if name.startswith(PROVIDER_PREFIX):
            names[name] = name
            continue
        target = resolve_model(state, name)  # 404 model_not_found, as chat completions answer
        names[name] = str(target.adapter_dir) if target.adapter_dir is not None else target.base
    return names


def _client_names(response: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The response as the client named its models, not as this machine loads them."""
    metadata = response["metadata"]
    if metadata.get("sampled_model_name") is not None:
        metadata["sampled_model_name"] = names.get(metadata["sampled_model_name"], metadata["sampled_model_name"])
    response["model_grader_token_usage_per_model"] = {
        names.get(k, k): v for k, v in response["model_grader_token_usage_per_model"].items()}
    return response
