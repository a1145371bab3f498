"""What every request passes before a route sees it: a body no larger than the server's limit, a `Host` the
server answers to when it has no API key, and no state-changing request from another site's page.

    app.add_middleware(RequestGuard, settings=settings)

The body is counted as it arrives (a chunked request declares no length) and reading stops at the limit, so a
50 MB body costs at most the limit in memory. Without an API key the server trusts whoever can reach it, which
loopback makes "this machine's users"; a web page could still reach it through DNS rebinding (its own name
pointing at 127.0.0.1: the browser then sends that name as `Host`) or by posting a form to it (no preflight for
`multipart/form-data`). The `Host` and `Origin`/`Sec-Fetch-Site` checks refuse both.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from fastapi import HTTPException  # FastAPI re-raises its own from a body read; any other becomes a 400
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunesmith.server.errors import OpenAIError, error_response
from tunesmith.server.settings import ServerSettings

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
UPLOAD_ENVELOPE = 64 * 1024  # what a multipart body adds to the file itself; the exact check happens while saving


def hostname(host: str) -> str:
    """`Host` header → name: `127.0.0.1:8000` → `127.0.0.1`, `[::1]:8000` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always this machine
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """Pure ASGI (no buffering of its own): refuses a request up front, or counts its body as the app reads it."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, over = self.body_limit(scope)
        refusal = self.host_refusal(headers) or self.cross_site_refusal(scope, headers) or _declared_over(
            headers, limit, over)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit, over), send)

    def body_limit(self, scope: Scope) -> tuple[int, OpenAIError]:
        """The most body bytes this request may send, and the 413 for going past it."""
        if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/files"):
            limit = self.settings.max_upload_bytes
            return limit + UPLOAD_ENVELOPE, OpenAIError(
                413, f"file is larger than the server's upload limit of {limit:,} bytes", param="file",
                code="file_too_large")
        limit = self.settings.max_body_bytes
        return limit, OpenAIError(413, f"the request body is larger than the server's limit of {limit:,} bytes "
                                       "(serve --max-body-mb)", code="request_too_large")

    def host_refusal(self, headers: Headers) -> OpenAIError | None:
        if self.settings.api_key or "host" not in headers:
            return None
        name = hostname(headers["host"])
        if is_loopback_name(name) or name in {h.lower() for h in self.settings.allowed_hosts}:
            return None
        return OpenAIError(403, f"Host '{name}' is not one this server answers to without an API key: use "
                                "127.0.0.1 or localhost, or start it with --allowed-host NAME (or --api-key).",
                           code="host_not_allowed")

    def cross_site_refusal(self, scope: Scope, headers: Headers) -> OpenAIError | None:
        if scope["method"] not in UNSAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        cross = site in ("cross-site", "same-site")
        if origin is not None and site is None:  # an older browser: compare the origin with the host asked for
            parts = urlsplit(origin)
            cross = origin == "null" or parts.netloc.lower() != headers.get("host", "").lower()
        if not cross:
            return None
        return OpenAIError(403, f"a {scope['method']} from another site's page ({origin or site}) is refused: "
                                "call the API from a client, or from the studio itself", code="cross_site_request")


def _declared_over(headers: Headers, limit: int, over: OpenAIError) -> OpenAIError | None:
    try:
        declared = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    return over if declared > limit else None


def _counting(receive: Receive, limit: int, over: OpenAIError) -> Receive:
    """`receive` that stops the request at `limit` bytes of body: the route's read ends in a 413."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, detail=over.body())
        return message

    return counted
