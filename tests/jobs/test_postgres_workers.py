"""Two worker processes sharing a PostgreSQL job store train every job exactly once."""

from __future__ import annotations

from tests.jobs.postgres_server import postgres_url
from tests.jobs.test_worker_recovery import worker_process
from tests.server.live_server import wait_for, write_chat_file
from tunesmith.jobs.files import save_upload
from tunesmith.jobs.lifecycle import JobRequest, create_job, validate_job_files
from tunesmith.artifacts.run_dir import read_events, run_dir_for
from tunesmith.jobs.store import JobStore


def test_two_workers_on_postgresql_run_each_job_once(tmp_path):
    data_dir = tmp_path / "data"
    with postgres_url() as url:
        store = JobStore(url)
        with write_chat_file(tmp_path / "train.jsonl").open("rb") as f:
            upload = save_upload(store, data_dir, f, "train.jsonl", "fine-tune", max_bytes=1 << 20)
        job_ids = []
        for _ in range(4):
            job = create_job(store, JobRequest(model="tiny-random", training_file=upload.id,
                                               hyperparameters={"n_epochs": 1, "batch_size": 12}))
            assert validate_job_files(store, data_dir, job.id).status == "queued"
            job_ids.append(job.id)
        workers = [worker_process(data_dir, f"pg-worker-{i}", "--db", url) for i in range(2)]
        try:
            wait_for(lambda: all(store.get_job(j).status == "succeeded" for j in job_ids)
                     or any(w.poll() is not None for w in workers), timeout=300, what="all jobs to succeed")
            assert all(w.poll() is None for w in workers), workers[0].stderr.read().decode()[-3000:]
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=60)
        jobs = [store.get_job(j) for j in job_ids]
        store.close()
    assert all(j.status == "succeeded" and j.attempts == 1 for j in jobs)
    assert {j.worker_id for j in jobs} <= {"pg-worker-0", "pg-worker-1"}
    for job_id in job_ids:
        messages = [e["message"] for e in read_events(run_dir_for(data_dir, job_id))]
        assert messages.count("Fine-tuning job started") == 1
