"""Pause, resume and cancel a job while a worker is training it (through the SDK)."""

from __future__ import annotations

import openai

from tests.server.live_server import running_server, running_workers, wait_for, write_chat_file
from tunesmith.artifacts.run_dir import read_events, read_results, read_state, run_dir_for
from tunesmith.server.settings import ServerSettings

LONG = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 1}}}  # 36 steps


def test_pause_resume_then_cancel_a_running_job(tmp_path):
    settings = ServerSettings(data_dir=tmp_path / "data")
    with running_server(settings) as url, running_workers(settings.data_dir):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        upload = client.files.create(file=write_chat_file(tmp_path / "t.jsonl").open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny-random", training_file=upload.id, method=LONG)
        run_dir = run_dir_for(settings.data_dir, job.id)
        # Ask as soon as a worker has it: the pause lands within the first steps, long before the last.
        wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status == "running", what="a worker to claim it")

        client.fine_tuning.jobs.pause(job.id)
        paused = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status == "paused" and j,
                          what="the pause")
        paused_at = read_state(run_dir)["step"]
        assert paused.finished_at is None and 1 <= paused_at < 36
        assert client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number == paused_at

        assert client.fine_tuning.jobs.resume(job.id).status == "queued"
        done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed")
                        and j, what="the resumed job")
        assert done.status == "succeeded", done.error
        assert sorted(read_results(run_dir)) == list(range(1, 37))  # resumed, not restarted
        assert any(e["message"] == f"Resumed from step {paused_at}" for e in read_events(run_dir))

        second = client.fine_tuning.jobs.create(model="tiny-random", training_file=upload.id, method=LONG)
        wait_for(lambda: client.fine_tuning.jobs.retrieve(second.id).status == "running", what="the second job")
        client.fine_tuning.jobs.cancel(second.id)
        cancelled = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(second.id)).status == "cancelled" and j,
                             what="the cancel")
        assert cancelled.finished_at is not None and cancelled.fine_tuned_model is None
        try:
            client.fine_tuning.jobs.resume(second.id)
            raise AssertionError("a cancelled job resumed")
        except openai.BadRequestError as e:
            assert e.code == "invalid_job_status"
