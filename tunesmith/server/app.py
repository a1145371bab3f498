"""The FastAPI application: the OpenAI-compatible API (`/v1`, Azure's `/openai`), the studio UI, API-key auth.

    app = create_app(ServerSettings(data_dir=Path("~/.local/share/tunesmith"), api_key="secret"))

Training does not run here: jobs wait in the store for `tunesmith worker` processes.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles

from tunesmith.jobs.lifecycle import validate_job_files
from tunesmith.jobs.store import JobStore, default_db_url, new_id
from tunesmith.server.errors import OpenAIError, install_error_handlers
from tunesmith.server.inference import ModelPool
from tunesmith.server.openai_api import azure_router, openai_router
from tunesmith.server.request_guards import RequestGuard
from tunesmith.server.settings import ServerSettings, ServerState, server_state

log = logging.getLogger("tunesmith.server")
UI_DIR = Path(__file__).parent / "ui"


def require_api_key(request: Request) -> None:
    """With an API key configured, every API request carries it: `Authorization: Bearer KEY` or `api-key: KEY`."""
    expected = server_state(request).settings.api_key
    if not expected:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("api-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise OpenAIError(401, "Incorrect API key provided." if given else
                          "You didn't provide an API key: send `Authorization: Bearer KEY` or `api-key: KEY`.",
                          code="invalid_api_key")


def create_app(settings: ServerSettings) -> FastAPI:
    # transformers resolves its names lazily, and two threads resolving at once can fail with an ImportError:
    # resolve the ones request threads use now, before any request arrives.
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    store = JobStore(settings.db_url or default_db_url(settings.data_dir))
    pool = ModelPool(max_adapters=settings.max_adapters, max_batch=settings.max_batch)
    state = ServerState(settings=settings, store=store, pool=pool)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _revalidate_interrupted(state)
        yield
        state.validator.shutdown(wait=False, cancel_futures=True)
        store.close()

    app = FastAPI(title="tunesmith", description="OpenAI-compatible fine-tuning API", lifespan=lifespan)
    app.state.tunesmith = state
    app.state.store = store  # what the studio's /ui-api reads
    app.state.data_dir = settings.data_dir
    install_error_handlers(app)

    # inside the request-id middleware (added after it): a 413 raised while reading the body must reach the
    # route's error handling as it is, not wrapped in that middleware's task group
    app.add_middleware(RequestGuard, settings=settings)

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-request-id"] = new_id("req_")
        return response

    auth = [Depends(require_api_key)]
    app.include_router(openai_router(), prefix="/v1", dependencies=auth)
    app.include_router(azure_router(), prefix="/openai", dependencies=auth)
    _add_studio(app, auth)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "param", "code"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, saying what the server answers: a 400 in OpenAI's error shape where FastAPI writes 422,
    and chat completions' `text/event-stream` when `stream` is true."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    error = {"description": "Invalid request (OpenAI's error shape; `param` names the field)",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None or method in ("post", "delete"):
                responses["400"] = error
            if method == "post" and path.endswith("/chat/completions"):
                responses.setdefault("200", {}).setdefault("content", {})["text/event-stream"] = {
                    "schema": {"type": "string", "description": "server-sent events: `data: <chunk JSON>` "
                                                                "lines, then `data: [DONE]`"}}
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = spec
    return spec


def _add_studio(app: FastAPI, auth: list) -> None:
    """The UI engineer's `/ui-api` router and static pages, when present (the API works without them)."""
    try:
        from tunesmith.server import ui_api
    except ImportError:
        ui_api = None
    if ui_api is not None:
        app.include_router(ui_api.router, dependencies=auth)
    from tunesmith.server import curves_api

    app.include_router(curves_api.router, dependencies=auth)
    if (UI_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=UI_DIR, html=True), name="studio")  # last: it matches every path


def _revalidate_interrupted(state: ServerState) -> None:
    """Jobs left in `validating_files` by a stopped server get validated now."""
    jobs, _ = state.store.list_jobs(limit=1_000_000, status=("validating_files",))
    for job in jobs:
        state.validator.submit(validate_job_files, state.store, state.data_dir, job.id)
