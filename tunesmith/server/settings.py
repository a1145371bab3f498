"""What every request handler shares: the server's settings, the job store and the loaded models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import Request

from tunesmith.jobs.store import JobStore
from tunesmith.server.inference import ModelPool

DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # OpenAI's per-file limit
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # any other request (a chat's messages): far more than a context holds


@dataclass
class ServerSettings:
    data_dir: Path
    db_url: str | None = None  # default: SQLite file in data_dir
    api_key: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_adapters: int = 8  # LoRA adapters kept loaded over one base model (least recently used goes)
    # OpenAI serves a job's results.csv base64-encoded, and code written against it decodes it; "raw" serves the CSV
    results_encoding: Literal["base64", "raw"] = "base64"
    max_batch: int = 16  # concurrent chat requests generated together (1: one at a time)
    eval_dirs: list[Path] = field(default_factory=list)  # eval runs kept outside data_dir/evals, shown in the studio
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: list[str] = field(default_factory=list)  # Host names answered without an API key, besides loopback

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.eval_dirs = [Path(d) for d in self.eval_dirs]


@dataclass
class ServerState:
    settings: ServerSettings
    store: JobStore
    pool: ModelPool
    # Job files are validated one at a time, off the request thread: create answers at once.
    validator: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "validate"))

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


def server_state(request: Request) -> ServerState:
    return request.app.state.tunesmith
