"""`/files`: upload (multipart, validated on arrival), list, retrieve, delete, content."""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response

from tunesmith.jobs.files import PURPOSES, UploadTooLarge, delete_file, file_path, save_upload
from tunesmith.server.errors import OpenAIError, not_found
from tunesmith.server.openai_objects import file_object
from tunesmith.server.settings import ServerState, server_state

router = APIRouter(tags=["files"])


@router.post("/files")
def create_file(request: Request, file: UploadFile = File(...), purpose: str = Form(...)) -> dict[str, Any]:
    state = server_state(request)
    if purpose not in PURPOSES:
        raise OpenAIError(400, f"purpose must be one of {', '.join(PURPOSES)}; got '{purpose}'", param="purpose",
                          code="invalid_value")
    declared = file.size
    if declared is not None and declared > state.settings.max_upload_bytes:
        raise _too_large(state)
    try:
        record = save_upload(state.store, state.data_dir, file.file, file.filename, purpose,
                             max_bytes=state.settings.max_upload_bytes)
    except UploadTooLarge:
        raise _too_large(state) from None
    return file_object(record)


@router.get("/files")
def list_files(request: Request, after: str | None = None, limit: int = Query(10_000, ge=1, le=10_000),
               order: Literal["asc", "desc"] = "desc", purpose: str | None = None) -> dict[str, Any]:
    state = server_state(request)
    records, has_more = state.store.list_files(purpose=purpose, after=after, limit=limit, ascending=order == "asc")
    data = [file_object(r) for r in records]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


@router.get("/files/{file_id}")
def retrieve_file(request: Request, file_id: str) -> dict[str, Any]:
    record = server_state(request).store.get_file(file_id)
    if record is None:
        raise not_found("file", file_id, param="file_id")
    return file_object(record)


@router.delete("/files/{file_id}")
def remove_file(request: Request, file_id: str) -> dict[str, Any]:
    state = server_state(request)
    if not delete_file(state.store, state.data_dir, file_id):
        raise not_found("file", file_id, param="file_id")
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content")
def file_content(request: Request, file_id: str) -> Response:
    state = server_state(request)
    record = state.store.get_file(file_id)
    path = file_path(state.data_dir, record) if record is not None else None
    if path is None or not path.is_file():
        raise not_found("file", file_id, param="file_id")
    if record.purpose == "fine-tune-results" and state.settings.results_encoding == "base64":
        # as OpenAI does: clients written for it run base64.b64decode(client.files.content(id).read())
        return Response(base64.b64encode(path.read_bytes()), media_type="application/octet-stream")
    return FileResponse(path, media_type="application/octet-stream", filename=record.filename)


def _too_large(state: ServerState) -> OpenAIError:
    return OpenAIError(413, f"file is larger than the server's upload limit of "
                            f"{state.settings.max_upload_bytes:,} bytes", param="file", code="file_too_large")
