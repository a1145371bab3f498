"""The job store: claiming (no job twice, even raced), stale takeover, cursor pages; job state transitions."""

from __future__ import annotations

import threading
import time

import pytest

from tests.jobs.postgres_server import postgres_url
from tunesmith.jobs.lifecycle import (JobError, JobRequest, cancel_job, create_job, fine_tuned_model_name,
                                      job_id_from_model_name, pause_job, resume_job)
from tunesmith.jobs.store import FileRecord, JobRecord, JobStore, new_id, now


def add_queued_jobs(store: JobStore, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        job = JobRecord(id=new_id("ftjob-"), model="tiny-random", training_file="file-x", hyperparameters={},
                        seed=0, status="queued", created_at=now(), result_files=[], attempts=0)
        store.add_job(job)
        ids.append(job.id)
    return ids


def race_claims(url: str, n_jobs: int = 24, n_workers: int = 4) -> dict[str, list[str]]:
    """`n_workers` threads, each with its own engine, claim as fast as they can; returns jobs by worker."""
    store = JobStore(url)
    add_queued_jobs(store, n_jobs)
    claimed: dict[str, list[str]] = {f"w{i}": [] for i in range(n_workers)}
    start = threading.Barrier(n_workers)

    def claim_all(worker: str) -> None:
        own = JobStore(url)
        start.wait()
        misses = 0
        while misses < 20:
            job = own.claim_job(worker, stale_after=3600)
            if job is None:
                misses += 1
                continue
            misses = 0
            claimed[worker].append(job.id)
            own.update_job(job.id, expect_worker=worker, status="succeeded")  # done: a worker holds one job
        own.close()

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    return claimed


def assert_each_claimed_once(claimed: dict[str, list[str]], n_jobs: int) -> None:
    everything = [j for jobs in claimed.values() for j in jobs]
    assert len(everything) == n_jobs and len(set(everything)) == n_jobs


def test_racing_workers_never_claim_a_job_twice_sqlite(tmp_path):
    assert_each_claimed_once(race_claims(f"sqlite:///{tmp_path}/jobs.db"), 24)


def test_racing_workers_never_claim_a_job_twice_postgresql():
    with postgres_url() as url:
        claimed = race_claims(url)
        store = JobStore(url)
        assert store.is_postgres
        store.close()
    assert_each_claimed_once(claimed, 24)


def test_stale_running_job_is_taken_over_and_own_job_reclaimed_at_once(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path}/jobs.db")
    [job_id] = add_queued_jobs(store, 1)
    assert store.claim_job("a", stale_after=60).id == job_id
    assert store.claim_job("b", stale_after=60) is None  # a's heartbeat is fresh
    assert store.claim_job("a", stale_after=60).id == job_id  # "a" restarted: its own job comes straight back
    store.update_job(job_id, heartbeat_at=time.time() - 120)
    taken = store.claim_job("b", stale_after=60)
    assert taken.id == job_id and taken.worker_id == "b" and taken.attempts == 3
    assert not store.heartbeat(job_id, "a")  # a's claim is gone: it must stop touching the job
    assert store.heartbeat(job_id, "b")


def test_file_pages_follow_after_and_order(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path}/jobs.db")
    ids = []
    for i in range(5):
        record = FileRecord(id=new_id("file-"), filename=f"{i}.jsonl", purpose="fine-tune", bytes=1,
                            created_at=now(), status="processed")
        ids.append(store.add_file(record).id)
    page, more = store.list_files(limit=2)
    assert [f.id for f in page] == ids[::-1][:2] and more
    page, more = store.list_files(limit=2, after=page[-1].id)
    assert [f.id for f in page] == ids[::-1][2:4] and more
    page, more = store.list_files(limit=10, after=ids[1], ascending=True)
    assert [f.id for f in page] == ids[2:] and not more


def test_job_state_transitions(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path}/jobs.db")
    store.add_file(FileRecord(id="file-train", filename="t.jsonl", purpose="fine-tune", bytes=1, created_at=now(),
                              status="processed"))
    job = create_job(store, JobRequest(model="tiny-random", training_file="file-train", suffix="s1"))
    assert job.status == "validating_files" and job.hyperparameters["n_epochs"] == "auto"
    store.update_job(job.id, status="queued")
    assert pause_job(store, job.id).status == "paused"
    assert resume_job(store, job.id).status == "queued"
    store.claim_job("w", stale_after=60)
    running = pause_job(store, job.id)  # running: the worker pauses at its next step
    assert running.status == "running" and running.control == "pause"
    assert cancel_job(store, job.id).control == "cancel"
    store.update_job(job.id, status="cancelled")
    with pytest.raises(JobError) as err:
        cancel_job(store, job.id)
    assert err.value.code == "job_already_finished"
    with pytest.raises(JobError) as err:
        resume_job(store, job.id)
    assert err.value.param == "fine_tuning_job_id"


@pytest.mark.parametrize("model, param, code", [
    ("gpt-4-0613", "model", "model_not_available"),  # trains at the provider, not here
    ("no-such-model", "model", "model_not_found"),
    ("ft:tiny-random:x:nope", "model", "model_not_found"),
])
def test_create_job_rejects_models_it_cannot_train(tmp_path, model, param, code):
    store = JobStore(f"sqlite:///{tmp_path}/jobs.db")
    with pytest.raises(JobError) as err:
        create_job(store, JobRequest(model=model, training_file="file-x"))
    assert (err.value.param, err.value.code) == (param, code)


def test_fine_tuned_model_names_lead_back_to_their_job():
    name = fine_tuned_model_name("tiny-random", "sql", "ftjob-abc123")
    assert name == "ft:tiny-random:sql:abc123"
    assert job_id_from_model_name(name) == "ftjob-abc123"
    assert job_id_from_model_name(name + ":ckpt-step-3") == "ftjob-abc123"
    assert fine_tuned_model_name(name, None, "ftjob-def") == "ft:tiny-random::def"  # continued fine-tuning
    assert job_id_from_model_name("tiny-random") is None


def test_estimated_finish_counts_training_time_not_queue_time(tmp_path):
    """A job queued for an hour, then 5 of 10 steps in 10 s: the estimate is ~10 s away, not an hour."""
    from tunesmith.artifacts.run_dir import RunFiles
    from tunesmith.server.openai_objects import estimated_finish

    job = JobRecord(id="ftjob-q", model="tiny-random", training_file="file-a", hyperparameters={}, seed=0,
                    status="running", created_at=int(time.time()) - 3600, result_files=[])
    run = RunFiles(tmp_path / "ftjob-q")
    run.root.mkdir()
    run.write_state("running", step=0, total_steps=10, started_at=int(time.time()) - 10, started_step=0)
    assert estimated_finish(job, run.root) is None  # no step done yet: no honest estimate
    state = run.write_state("running", step=5)
    assert estimated_finish(job, run.root) == pytest.approx(state["updated_at"] + 10, abs=2)
