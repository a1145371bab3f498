"""A second `tunesmith serve` playing a provider, with the faults real providers have: a connection that drops
(a TCP proxy we close and reopen), 429s and lost responses (an ASGI layer answering instead of the app)."""

from __future__ import annotations

import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


from tests.server.live_server import free_port, running_workers, serving
from tunesmith.server.app import create_app
from tunesmith.server.settings import ServerSettings

API_KEY = "provider-test-key"
KEY_ENV = "TUNESMITH_TEST_PROVIDER_KEY"
# The provider's model names, played by the tiny random model (jobs/lifecycle.py `served_model`).
ALIASES = "gpt-4o-mini-2024-07-18=tiny-random,gpt-35-turbo-0125=tiny-random,gpt-35-turbo-0613=tiny-random,gpt-4-0613=tiny-random"


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int
    times: int
    after_app: bool  # let the app handle the request, then lose its answer (the client sees `status`)
    hits: int = 0


class FaultInjector:
    """ASGI middleware: the next `times` requests matching method and path get `status` instead of the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.faults: list[Fault] = []

    def fail(self, method: str, path: str, status: int = 429, times: int = 1, after_app: bool = False) -> Fault:
        fault = Fault(method, re.compile(path), status, times, after_app)
        self.faults.append(fault)
        return fault

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        fault = self._match(scope) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        fault.hits += 1
        if fault.after_app:
            async def discard(_message: dict) -> None:
                return None

            await self.app(scope, receive, discard)
        body = (b'{"error":{"message":"injected by the test","type":"server_error","param":null,"code":null}}')
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if fault.status == 429:
            headers.append((b"retry-after", b"0.2"))
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _match(self, scope: dict) -> Fault | None:
        for fault in self.faults:
            if fault.hits < fault.times and scope["method"] == fault.method and fault.path.search(scope["path"]):
                return fault
        return None


class DroppingProxy:
    """A TCP forwarder to `target_port`; `drop()` cuts every connection and refuses new ones until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def drop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class FakeProvider:
    url: str  # through the proxy: what clients use
    faults: FaultInjector
    proxy: DroppingProxy
    settings: ServerSettings

    def openai_endpoint(self) -> str:
        return self.url + "/v1"


@contextmanager
def fake_provider(data_dir: Path) -> Iterator[FakeProvider]:
    """A real tunesmith server (API key required) and a worker, behind the fault injector and the proxy."""
    settings = ServerSettings(data_dir=data_dir, api_key=API_KEY)
    faults = FaultInjector(create_app(settings))
    with serving(faults) as port:
        proxy = DroppingProxy(port)
        try:
            with running_workers(data_dir):
                yield FakeProvider(f"http://127.0.0.1:{proxy.port}", faults, proxy, settings)
        finally:
            proxy.drop()
