"""The worker: claims queued jobs from the store and trains them, one at a time, in its own process.

Run one with `tunesmith worker` (or `tunesmith serve --workers N`). Several may share one store
(PostgreSQL for several machines; they then need the same data directory). While a job runs, a heartbeat
thread refreshes its claim; if the worker is killed, the heartbeat stops, and after `stale_after` seconds the
next worker to poll claims the job again and resumes the run from its last checkpoint (`sft.resume`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunesmith.jobs.files import add_result_file, file_path
from tunesmith.jobs.lifecycle import fine_tuned_model_name, job_id_from_model_name, served_model
from tunesmith.artifacts.run_dir import list_checkpoints, read_state, run_dir_for
from tunesmith.jobs.store import JobRecord, JobStore, now

log = logging.getLogger("tunesmith.worker")


@dataclass
class WorkerSettings:
    data_dir: Path
    worker_id: str = ""
    poll_interval: float = 1.0
    heartbeat_interval: float = 2.0
    stale_after: float = 30.0  # seconds without a heartbeat before a running job counts as abandoned

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}"


def run_worker(store: JobStore, settings: WorkerSettings, *, stop: threading.Event | None = None,
               max_jobs: int | None = None) -> int:
    """Poll for jobs until `stop` is set (or `max_jobs` were run); returns how many jobs this worker ran."""
    stop = stop or threading.Event()
    done = 0
    log.info("worker %s polling %s", settings.worker_id, store.url)
    while not stop.is_set() and (max_jobs is None or done < max_jobs):
        job = store.claim_job(settings.worker_id, stale_after=settings.stale_after)
        if job is None:
            stop.wait(settings.poll_interval)
            continue
        run_job(store, settings, job, stop)
        done += 1
    return done


def run_job(store: JobStore, settings: WorkerSettings, job: JobRecord, stop: threading.Event | None = None) -> str:
    """Train a claimed job to its end (or to a cancel/pause request); record the outcome; return its status.
    When `stop` is set (the worker is shutting down) the run checkpoints and the job goes back to the queue."""
    stop = stop or threading.Event()
    lost = threading.Event()  # set when the claim was taken over: then this worker must not touch the job
    beat_stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(store, settings, job.id, beat_stop, lost), daemon=True)
    beat.start()
    try:
        result_status, error = _train(store, settings, job, lost, stop)
    finally:
        beat_stop.set()
        beat.join()
    if lost.is_set():
        log.warning("job %s was taken over by another worker; leaving it", job.id)
        return "lost"
    return _record_outcome(store, settings, job, result_status, error, shutting_down=stop.is_set())


def _train(store: JobStore, settings: WorkerSettings, job: JobRecord, lost: threading.Event,
           stop: threading.Event) -> tuple[str, Any]:
    from tunesmith.training.launch import start

    run_dir = run_dir_for(settings.data_dir, job.id)
    should_stop = _stop_poller(store, job.id, lost, stop)
    on_event = _event_logger(job.id)
    try:
        if (run_dir / "config.json").is_file():  # an earlier attempt got this far: continue it, never restart
            step = checkpoints[-1].step if (checkpoints := list_checkpoints(run_dir)) else 0
            store.add_event(job.id, f"Resuming fine-tuning from the checkpoint at step {step}", data={"step": step})
            result = start(run_dir, should_stop=should_stop, on_event=on_event)
        else:
            if run_dir.exists():  # died before the trainer wrote anything worth keeping
                shutil.rmtree(run_dir)
            result = start(train_config_for(store, settings.data_dir, job), should_stop=should_stop,
                           on_event=on_event)
    except Exception as e:  # a crash in training fails this job, not the worker
        log.exception("job %s failed", job.id)
        return "failed", {"code": getattr(e, "code", None) or "training_failed", "param": None,
                          "message": f"{type(e).__name__}: {e}"}
    error = getattr(result, "error", None) or read_state(run_dir).get("error")
    return result.status, error


def train_config_for(store: JobStore, data_dir: Path, job: JobRecord) -> Any:
    """The TrainConfig a job asks for: its model, files, hyperparameters, seed, suffix; output in its run dir."""
    from tunesmith.train_config import build_config

    model = served_model(job.model)
    if model.startswith("ft:"):  # continued fine-tuning starts from that job's run directory
        model = str(run_dir_for(data_dir, job_id_from_model_name(model)))
    training = store.get_file(job.training_file)
    validation = store.get_file(job.validation_file) if job.validation_file else None
    for param, file_id, record in (("training_file", job.training_file, training),
                                   ("validation_file", job.validation_file, validation)):
        if file_id and record is None:
            raise FileNotFoundError(f"{param} {file_id} was deleted before the job started")
    return build_config({
        "model": model,
        "training_file": str(file_path(data_dir, training)),
        "validation_file": str(file_path(data_dir, validation)) if validation is not None else None,
        **{k: v for k, v in job.hyperparameters.items() if v is not None},
        "seed": job.seed,
        "suffix": job.suffix,
        "output": str(run_dir_for(data_dir, job.id)),
    }, source=f"job {job.id}")


def _record_outcome(store: JobStore, settings: WorkerSettings, job: JobRecord, status: str, error: Any, *,
                    shutting_down: bool = False) -> str:
    run_dir = run_dir_for(settings.data_dir, job.id)
    state = read_state(run_dir)
    mine = dict(expect_status=("running",), expect_worker=settings.worker_id)
    fields: dict[str, Any] = dict(heartbeat_at=None, trained_tokens=state.get("trained_tokens"))
    if status == "succeeded":
        results = run_dir / "results.csv"
        result_files = [add_result_file(store, settings.data_dir, results, "results.csv").id] if results.is_file() else []
        name = fine_tuned_model_name(job.model, job.suffix, job.id)
        store.update_job(job.id, **mine, **fields, status="succeeded", fine_tuned_model=name,
                         result_files=result_files, finished_at=now(), control=None)
        store.add_event(job.id, f"New fine-tuned model created: {name}", phase=2)
    elif status == "paused":
        current = store.get_job(job.id)
        if current is not None and current.control == "pause":
            status, message = "paused", "The job was paused"
        elif shutting_down:  # not the user's pause: the worker is stopping; another worker continues the job
            status, message = "queued", "Worker stopped; the job was checkpointed and moved back to the queue"
        else:  # a resume arrived while the trainer was pausing: it wins
            status, message = "queued", "The job was resumed, moving job to queued state"
        store.update_job(job.id, **mine, **fields, status=status, control=None, worker_id=None)
        store.add_event(job.id, message, phase=2)
    elif status == "cancelled":
        store.update_job(job.id, **mine, **fields, status="cancelled", finished_at=now(), control=None)
        store.add_event(job.id, "The job was cancelled", phase=2)
    else:
        error = _job_error(error)
        store.update_job(job.id, **mine, **fields, status="failed", error=error, finished_at=now(), control=None)
        store.add_event(job.id, f"The job failed: {error['message']}", level="error", phase=2)
        status = "failed"
    return status


def _job_error(error: Any) -> dict[str, Any]:
    if isinstance(error, dict) and error.get("message"):
        return {"code": error.get("code") or "training_failed", "param": error.get("param"),
                "message": str(error["message"])}
    return {"code": "training_failed", "param": None, "message": str(error or "training stopped without a result")}


def _stop_poller(store: JobStore, job_id: str, lost: threading.Event, shutdown: threading.Event,
                 every: float = 0.25) -> Callable[[], bool | str]:
    """`should_stop` for the trainer: "pause", True (cancel) or False; asks the store at most every `every` s."""
    last = {"at": 0.0, "answer": False}

    def should_stop() -> bool | str:
        if lost.is_set() or shutdown.is_set():
            return "pause"  # checkpoint and get out of the way: someone else owns it, or this worker stops
        if time.monotonic() - last["at"] >= every:
            job = store.get_job(job_id)
            control = job.control if job is not None else "cancel"
            last["answer"] = {"cancel": True, "pause": "pause"}.get(control or "", False)
            last["at"] = time.monotonic()
        return last["answer"]

    return should_stop


def _event_logger(job_id: str) -> Callable[[dict], None]:
    def on_event(event: dict) -> None:  # the trainer already writes events.jsonl; the worker's log mirrors it
        log.info("%s: %s", job_id, event.get("message"))

    return on_event


def _heartbeat(store: JobStore, settings: WorkerSettings, job_id: str, stop: threading.Event,
               lost: threading.Event) -> None:
    while not stop.wait(settings.heartbeat_interval):
        try:
            if not store.heartbeat(job_id, settings.worker_id):
                job = store.get_job(job_id)
                if job is None or job.worker_id != settings.worker_id:
                    lost.set()
                    return
        except Exception:  # a store hiccup: keep training, try again at the next beat
            log.exception("heartbeat for %s failed", job_id)


def main(db_url: str | None, data_dir: Path | None, worker_id: str | None = None, poll_interval: float = 1.0,
         stale_after: float = 30.0, max_jobs: int | None = None) -> int:
    """Entry point of `tunesmith worker`."""
    from tunesmith.jobs.store import default_db_url
    from tunesmith.paths import data_dir as default_data_dir

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    store = JobStore(db_url or default_db_url(data_dir))
    settings = WorkerSettings(data_dir=data_dir, worker_id=worker_id or "", poll_interval=poll_interval,
                              stale_after=stale_after)
    # Jobs run in a thread so that this (main) thread owns the signals: SIGTERM or Ctrl-C checkpoints the
    # running job and puts it back in the queue instead of killing it mid-step (or cancelling it).
    stop = threading.Event()
    count: list[int] = []
    runner = threading.Thread(target=lambda: count.append(run_worker(store, settings, stop=stop, max_jobs=max_jobs)),
                              name="worker")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner.start()
    try:
        while runner.is_alive():
            runner.join(0.5)
    finally:
        store.close()
    return count[0] if count else 0
