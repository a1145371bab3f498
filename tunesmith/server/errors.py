"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every failure the server returns.

Status codes follow what the SDK maps to exception classes: 400 BadRequestError, 401 AuthenticationError,
404 NotFoundError, 413 (APIStatusError), 500 InternalServerError. 409 is avoided: the SDK retries it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tunesmith.server")

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error"}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error")

    def body(self, data_dir: Path | None = None) -> dict:
        """OpenAI's error object; the message never shows the server's absolute paths."""
        return {"error": {"message": hide_server_paths(self.message, data_dir), "type": self.type,
                          "param": self.param, "code": self.code}}


def not_found(what: str, ident: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(404, f"No such {what}: '{ident}'", param=param, code=code)


def error_response(err: OpenAIError, data_dir: Path | None = None) -> JSONResponse:
    """The error as OpenAI sends it; its message never shows the server's absolute paths."""
    # x-should-retry: false keeps the SDK from retrying a request that will fail the same way again.
    headers = {"x-should-retry": "false"} if err.status < 500 else {}
    return JSONResponse(err.body(data_dir), status_code=err.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return error_response(exc, request_data_dir(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()), request_data_dir(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and isinstance(exc.detail.get("error"), dict):  # already OpenAI-shaped
            e = exc.detail["error"]
            return error_response(OpenAIError(exc.status_code, str(e.get("message")), param=e.get("param"),
                                              code=e.get("code"), type=e.get("type")), request_data_dir(request))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(OpenAIError(exc.status_code, str(exc.detail), code=code), request_data_dir(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(OpenAIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"),
                              request_data_dir(request))


# pydantic names the member of a union it tried in `loc` ("literal['auto']", "float", "function-after[...]"):
# not a field, so not part of `param`
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|bytes|list|dict|[a-z_-]+\[.*\])$")
_LOC_ROOTS = ("body", "query", "path", "header", "form", "cookie")


def _param(loc: tuple) -> str | None:
    parts = [p for p in loc if p not in _LOC_ROOTS]
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in parts if isinstance(p, int) or not _UNION_TAG.match(p)]
    return ".".join(parts) or None


def validation_error(errors: list) -> OpenAIError:
    """One 400 for pydantic's errors: `param` is the first failing field (without union-member tags), and the
    message lists what each alternative of a union wanted, e.g. "Input should be 'auto' or a finite number"."""
    if not errors:
        return OpenAIError(400, "invalid request", code="invalid_value")
    param = _param(tuple(errors[0].get("loc", ())))
    wanted = [e.get("msg", "invalid value") for e in errors if _param(tuple(e.get("loc", ()))) == param]
    message = "; or ".join(dict.fromkeys(wanted))
    if errors[0].get("type") == "missing":
        return OpenAIError(400, f"Missing required parameter: '{param}'.", param=param,
                           code="missing_required_parameter")
    return OpenAIError(400, f"{param}: {message}" if param else message, param=param, code="invalid_value")


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:>])/([^\s'\"/:`]+)/(?:[^\s'\"/:`]+/)*([^\s'\"/:`]*)")
DATA_DIR_NAME = "<data dir>"


def redact_paths(text: str) -> str:
    """`text` with absolute paths cut to their last part: an error message must not map the server's disk.
    Only paths whose top folder exists on this machine count (so `/ui-api/catalog` in a hint stays)."""
    return _ABSOLUTE_PATH.sub(lambda m: f".../{m.group(2)}" if _is_top_folder(m.group(1)) else m.group(0), text)


@functools.lru_cache(maxsize=256)
def _is_top_folder(name: str) -> bool:
    return os.path.isdir("/" + name)


def hide_server_paths(text: str, data_dir: Path | None) -> str:
    """`text` as a client may read it: paths in the data dir relative to it (`<data dir>/runs/ftjob-…`, the
    layout docs/architecture.md describes), any other absolute path cut to its last part."""
    if data_dir is not None:
        for root in dict.fromkeys((str(Path(data_dir).resolve()), str(Path(data_dir).absolute()))):
            text = text.replace(root, DATA_DIR_NAME)
    return redact_paths(text)


def request_data_dir(request: Request) -> Path | None:
    """The serving app's data dir (None for an app without tunesmith's state, as in a bare router test)."""
    state = getattr(request.app.state, "tunesmith", None)
    return getattr(state, "data_dir", None)
