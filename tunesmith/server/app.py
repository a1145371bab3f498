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
from tunesmith.server.errors import OpenAIError, error_response, install_error_handlers
from tunesmith.server.inference import ModelPool
from tunesmith.server.openai_api import azure_router, openai_router
from tunesmith.server.state import ServerSettings, ServerState, server_state

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

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Any) -> Any:
        too_large = _declared_upload_too_large(request, settings.max_upload_bytes)
        if too_large is not None:  # refuse before the body is read and spooled to disk
            return error_response(too_large)
        response = await call_next(request)
        response.headers["x-request-id"] = new_id("req_")
        return response

    auth = [Depends(require_api_key)]
    app.include_router(openai_router(), prefix="/v1", dependencies=auth)
    app.include_router(azure_router(), prefix="/openai", dependencies=auth)
    _add_studio(app, auth)
    return app


def _declared_upload_too_large(request: Request, limit: int) -> OpenAIError | None:
    if request.method != "POST" or not request.url.path.endswith("/files"):
        return None
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        return None
    # the multipart envelope adds a little to the file itself; the exact check happens while saving
    if declared <= limit + 64 * 1024:
        return None
    return OpenAIError(413, f"file is larger than the server's upload limit of {limit:,} bytes", param="file",
                       code="file_too_large")


def _add_studio(app: FastAPI, auth: list) -> None:
    """The UI engineer's `/ui-api` router and static pages, when present (the API works without them)."""
    try:
        from tunesmith.server import ui_api
    except ImportError:
        ui_api = None
    if ui_api is not None:
        app.include_router(ui_api.router, dependencies=auth)
    if (UI_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=UI_DIR, html=True), name="studio")  # last: it matches every path


def _revalidate_interrupted(state: ServerState) -> None:
    """Jobs left in `validating_files` by a stopped server get validated now."""
    jobs, _ = state.store.list_jobs(limit=1_000_000, status=("validating_files",))
    for job in jobs:
        state.validator.submit(validate_job_files, state.store, state.data_dir, job.id)
