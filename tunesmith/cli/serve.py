"""`tunesmith serve` (the OpenAI-compatible API and studio, plus N worker processes) and `tunesmith worker`."""

from __future__ import annotations

import enum
import ipaddress
import logging
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import typer

from tunesmith.cli.app import app, console, err_console



class ResultsEncoding(str, enum.Enum):
    base64 = "base64"
    raw = "raw"


DB_HELP = "job store URL: sqlite:///path.db (default: tunesmith.db in the data dir) or postgresql://user@host/db"
DATA_DIR_HELP = "uploaded files and run directories (default: $TUNESMITH_HOME or ~/.local/share/tunesmith)"
STALE_HELP = "seconds without a heartbeat before another worker takes over a running job"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; other than loopback needs --api-key"),
    port: int = typer.Option(8000, "--port"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="TUNESMITH_API_KEY",
                                       help="require `Authorization: Bearer KEY` (or `api-key: KEY`)"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    workers: int = typer.Option(1, "--workers", min=0, help="worker processes to start (0: run them elsewhere)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    max_upload_mb: int = typer.Option(512, "--max-upload-mb", min=1, help="largest accepted upload"),
    max_body_mb: int = typer.Option(16, "--max-body-mb", min=1,
                                    help="largest accepted request body other than an upload (a chat's messages)"),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="a Host name this server answers to without "
                                           "an API key, besides 127.0.0.1 and localhost (repeatable)"),
    max_adapters: int = typer.Option(8, "--max-adapters", min=1, help="LoRA adapters kept loaded"),
    max_batch: int = typer.Option(16, "--max-batch", min=1,
                                  help="concurrent chat requests generated together in one batch (1: one at a time)"),
    results_encoding: ResultsEncoding = typer.Option(
        ResultsEncoding.base64, "--results-encoding", help="how a job's results.csv is served: base64 as OpenAI does"),
    evals_dir: list[Path] = typer.Option([], "--evals-dir", help="also list the eval runs under this folder in "
                                         "the studio (repeatable), e.g. runs/querylang/evals"),
) -> None:
    """Serve the OpenAI-compatible fine-tuning API and the studio UI; train jobs in worker processes."""
    import uvicorn

    from tunesmith.paths import data_dir as default_data_dir
    from tunesmith.server.app import create_app
    from tunesmith.server.settings import ServerSettings

    if not is_loopback(host) and not api_key:
        err_console.print(f"[red]error:[/red] refusing to bind {host} without an API key: anyone who can reach "
                          "it could upload data and run jobs. Pass --api-key KEY (or set TUNESMITH_API_KEY), or "
                          "bind 127.0.0.1.")
        raise typer.Exit(2)
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    settings = ServerSettings(data_dir=data_dir, db_url=db, api_key=api_key,
                              max_upload_bytes=max_upload_mb * 1024 * 1024, max_adapters=max_adapters,
                              max_body_bytes=max_body_mb * 1024 * 1024, allowed_hosts=list(allowed_host),
                              max_batch=max_batch,
                              results_encoding=results_encoding.value,
                              eval_dirs=[d.expanduser().resolve() for d in evals_dir])
    application = create_app(settings)  # creates the store's tables before any worker opens it
    supervisor = WorkerSupervisor(workers, db=db, data_dir=data_dir, name=f"{socket.gethostname()}-{port}")
    supervisor.start()
    console.print(f"tunesmith serving http://{host}:{port}/v1 (studio at http://{host}:{port}/), "
                  f"{workers} worker(s), data in {data_dir}")
    # uvicorn re-raises SIGTERM after its shutdown, with the handler found at start: make that handler an
    # exit, so the `finally` stops the workers instead of the process dying around them.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(application, host=host, port=port, log_level="info")
    finally:
        supervisor.stop()


@app.command("worker")
def worker(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    worker_id: str | None = typer.Option(None, "--worker-id", help="stable id; a restarted worker with the same "
                                         "id resumes its own job at once (default: host-pid)"),
    poll_interval: float = typer.Option(1.0, "--poll-interval", help="seconds between looks at the queue"),
    stale_after: float = typer.Option(30.0, "--stale-after", help=STALE_HELP),
    max_jobs: int | None = typer.Option(None, "--max-jobs", help="exit after this many jobs"),
) -> None:
    """Run fine-tuning jobs from the job store, one at a time, until stopped."""
    from tunesmith.jobs.worker import main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main(db, data_dir.expanduser().resolve() if data_dir else None, worker_id=worker_id,
         poll_interval=poll_interval, stale_after=stale_after, max_jobs=max_jobs)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook (Linux) after which the kernel sends the worker SIGTERM if `serve` itself dies.
    prctl is looked up here, in the parent: the forked child only calls it."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


class WorkerSupervisor:
    """Keeps N `tunesmith worker` processes alive; a worker that dies is started again with the same id, so
    it picks its interrupted job straight back up."""

    def __init__(self, n: int, *, db: str | None, data_dir: Path, name: str, check_every: float = 2.0) -> None:
        self.n, self.db, self.data_dir, self.name, self.check_every = n, db, data_dir, name, check_every
        self.processes: list[subprocess.Popen | None] = [None] * n
        self._stop = threading.Event()
        self._preexec = _die_with_parent()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="worker-supervisor")

    def command(self, slot: int) -> list[str]:
        cmd = [sys.executable, "-c", "from tunesmith.cli import app; app()", "worker",
               "--data-dir", str(self.data_dir), "--worker-id", f"{self.name}-w{slot}"]
        return cmd + (["--db", self.db] if self.db else [])

    def start(self) -> None:
        if self.n:
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for slot, process in enumerate(self.processes):
                if process is None or process.poll() is not None:
                    if process is not None:
                        err_console.print(f"worker {slot} exited with {process.returncode}; starting it again")
                    self.processes[slot] = subprocess.Popen(self.command(slot), preexec_fn=self._preexec)
            self._stop.wait(self.check_every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # else it could start a replacement for a worker being stopped
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
