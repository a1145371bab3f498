"""A real tunesmith server for tests: uvicorn on a free port in a thread, plus in-process workers."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import uvicorn

from tunesmith.jobs.store import JobStore, default_db_url
from tunesmith.jobs.worker import WorkerSettings, run_worker
from tunesmith.server.app import create_app
from tunesmith.server.settings import ServerSettings

QUESTIONS = ["capital of France", "two plus two", "color of the sky", "opposite of hot", "days in a week",
             "largest planet", "freezing point of water", "author of Hamlet", "square root of nine",
             "first letter of the alphabet", "number of continents", "language of Brazil"]
ANSWERS = ["Paris", "4", "blue", "cold", "7", "Jupiter", "0 C", "Shakespeare", "3", "A", "7", "Portuguese"]


def write_chat_file(path: Path, n: int = 12) -> Path:
    """`n` short, distinct chat examples (OpenAI's minimum is 10)."""
    lines = []
    for i in range(n):
        q, a = QUESTIONS[i % len(QUESTIONS)], ANSWERS[i % len(ANSWERS)]
        lines.append(json.dumps({"messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": f"What is the {q}? (#{i})"},
            {"role": "assistant", "content": f"{a} ({i})"},
        ]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(settings: ServerSettings) -> Iterator[str]:
    """Serve `settings` on a free loopback port; yields the base URL (`http://127.0.0.1:PORT`)."""
    with serving(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_workers(data_dir: Path, db_url: str | None = None, n: int = 1, **settings: Any) -> Iterator[list[str]]:
    """`n` workers as threads of this process (each with its own store connection); yields their ids."""
    stop = threading.Event()
    threads, ids = [], []
    for i in range(n):
        store = JobStore(db_url or default_db_url(data_dir))
        ws = WorkerSettings(data_dir=data_dir, worker_id=f"test-worker-{i}", poll_interval=0.2, **settings)
        ids.append(ws.worker_id)
        threads.append((threading.Thread(target=run_worker, args=(store, ws), kwargs={"stop": stop}, daemon=True),
                        store))
    for t, _ in threads:
        t.start()
    try:
        yield ids
    finally:
        stop.set()
        for t, store in threads:
            t.join(timeout=120)
            store.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 180, every: float = 0.3, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
