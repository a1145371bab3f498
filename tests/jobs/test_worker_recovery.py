"""A worker killed mid-training: the job resumes from its last checkpoint in the next worker and finishes,
with no step trained twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.server.live_server import wait_for, write_chat_file
from tunesmith.jobs.files import save_upload
from tunesmith.jobs.lifecycle import JobRequest, create_job, validate_job_files
from tunesmith.artifacts.run_dir import read_events, read_results, read_state, run_dir_for
from tunesmith.jobs.store import JobStore, default_db_url


def worker_process(data_dir: Path, worker_id: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from tunesmith.cli import app; app()", "worker", "--data-dir", str(data_dir),
           "--worker-id", worker_id, "--poll-interval", "0.2", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def queued_job(store: JobStore, data_dir: Path, tmp_path: Path, **hyperparameters: int) -> str:
    with write_chat_file(tmp_path / "train.jsonl").open("rb") as f:
        upload = save_upload(store, data_dir, f, "train.jsonl", "fine-tune", max_bytes=1 << 20)
    job = create_job(store, JobRequest(model="tiny-random", training_file=upload.id, hyperparameters=hyperparameters))
    assert validate_job_files(store, data_dir, job.id).status == "queued"
    return job.id


def test_killed_worker_job_resumes_from_checkpoint_and_finishes(tmp_path):
    data_dir = tmp_path / "data"
    store = JobStore(default_db_url(data_dir))
    job_id = queued_job(store, data_dir, tmp_path, n_epochs=3, batch_size=1)  # 12 steps per epoch, 36 in all
    run_dir = run_dir_for(data_dir, job_id)

    first = worker_process(data_dir, "worker-a")
    try:
        # Kill it once the first epoch's checkpoint exists and before the run ends. state.json is written just
        # after the checkpoint (and at most a second apart between): wait for both, or the kill can land between.
        def checkpointed() -> bool:
            return ((run_dir / "checkpoints" / "step-12").is_dir() and read_state(run_dir).get("step", 0) >= 12)

        wait_for(lambda: checkpointed() or first.poll() is not None, every=0.02, what="the first checkpoint")
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = read_state(run_dir)["step"]
    assert 12 <= killed_at < 36 and read_state(run_dir)["status"] == "running"
    assert store.get_job(job_id).status == "running"  # the store still thinks worker-a has it

    # Another worker (another machine, say) takes over once worker-a's heartbeat is stale.
    second = worker_process(data_dir, "worker-b", "--stale-after", "3", "--max-jobs", "1")
    try:
        assert second.wait(timeout=300) == 0, second.stderr.read().decode()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()

    job = store.get_job(job_id)
    assert job.status == "succeeded", job.error
    assert job.worker_id == "worker-b" and job.attempts == 2
    messages = [e["message"] for e in read_events(run_dir)]
    assert messages.count("Fine-tuning job started") == 1  # never started over
    last_checkpoint = 12 if killed_at < 24 else 24
    assert any(m.startswith(f"Resumed from step {last_checkpoint}") for m in messages)
    assert sorted(read_results(run_dir)) == list(range(1, 37))  # every step once in results.csv
    claims = [e.message for e in store.list_events(job_id) if e.message.startswith("Job claimed")]
    assert claims == ["Job claimed by worker worker-a", "Job claimed by worker worker-b after its previous worker stopped"]
    store.close()


def test_stopped_worker_checkpoints_and_requeues_its_job(tmp_path):
    data_dir = tmp_path / "data"
    store = JobStore(default_db_url(data_dir))
    job_id = queued_job(store, data_dir, tmp_path, n_epochs=3, batch_size=1)
    run_dir = run_dir_for(data_dir, job_id)
    first = worker_process(data_dir, "worker-a")
    try:
        wait_for(lambda: read_state(run_dir).get("step", 0) >= 1 or first.poll() is not None, every=0.05,
                 what="training to start")
        first.send_signal(signal.SIGTERM)  # what `serve` sends its workers when it stops
        assert first.wait(timeout=120) == 0, first.stderr.read().decode()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    stopped_at = read_state(run_dir)["step"]
    job = store.get_job(job_id)
    assert job.status == "queued" and job.worker_id is None and stopped_at < 36
    assert (run_dir / "checkpoints" / f"step-{stopped_at}").is_dir()  # checkpointed where it stopped

    second = worker_process(data_dir, "worker-b", "--max-jobs", "1")
    try:
        assert second.wait(timeout=300) == 0, second.stderr.read().decode()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    assert store.get_job(job_id).status == "succeeded"
    assert sorted(read_results(run_dir)) == list(range(1, 37))
    assert any(e["message"] == f"Resumed from step {stopped_at}" for e in read_events(run_dir))
    store.close()
