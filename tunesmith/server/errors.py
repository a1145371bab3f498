"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every failure the server returns.

Status codes follow what the SDK maps to exception classes: 400 BadRequestError, 401 AuthenticationError,
404 NotFoundError, 413 (APIStatusError), 500 InternalServerError. 409 is avoided: the SDK retries it.
"""

from __future__ import annotations

import logging

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

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(what: str, ident: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(404, f"No such {what}: '{ident}'", param=param, code=code)


def error_response(err: OpenAIError) -> JSONResponse:
    # x-should-retry: false keeps the SDK from retrying a request that will fail the same way again.
    headers = {"x-should-retry": "false"} if err.status < 500 else {}
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIError)
    async def _openai_error(_request: Request, exc: OpenAIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header", "form")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
        return error_response(OpenAIError(400, message, param=param, code="invalid_value"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and isinstance(exc.detail.get("error"), dict):  # already OpenAI-shaped
            e = exc.detail["error"]
            return error_response(OpenAIError(exc.status_code, str(e.get("message")), param=e.get("param"),
                                              code=e.get("code"), type=e.get("type")))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(OpenAIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(OpenAIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"))
