"""`tunesmith serve --workers 1` as a user runs it: a separate process with its own worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import openai

from tests.server.live_server import free_port, wait_for, write_chat_file
from tests.ui.fixtures import write_eval_pair


def test_serve_command_runs_api_and_worker_processes(tmp_path):
    port = free_port()
    base_eval, tuned_eval = write_eval_pair(tmp_path / "demo" / "evals")
    cmd = [sys.executable, "-c", "from tunesmith.cli import app; app()", "serve", "--port", str(port),
           "--workers", "1", "--data-dir", str(tmp_path / "data"), "--api-key", "k", "--max-upload-mb", "1",
           "--evals-dir", str(tmp_path / "demo" / "evals"), "--results-encoding", "raw"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(url + "/v1/models", headers={"api-key": "k"}).status_code == 200
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                return False

        wait_for(up, timeout=120, what="the server")
        big = httpx.post(url + "/v1/files", headers={"Authorization": "Bearer k"}, data={"purpose": "fine-tune"},
                         files={"file": ("big.jsonl", b"x" * (3 << 20))})
        assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        upload = client.files.create(file=write_chat_file(tmp_path / "t.jsonl").open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny-random", training_file=upload.id, hyperparameters={
            "n_epochs": 1, "batch_size": 6})
        done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed")
                        and j, timeout=240, what="the job")
        assert done.status == "succeeded", done.error
        claims = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
                  if e.message.startswith("Job claimed")]
        assert claims == [f"Job claimed by worker {os.uname().nodename}-{port}-w0"]
        assert client.files.content(done.result_files[0]).read().startswith(b"step,train_loss")  # raw, as asked
        listed = httpx.get(url + "/ui-api/evals", headers={"api-key": "k"}).json()["data"]
        assert {e["id"] for e in listed} == {base_eval, tuned_eval}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
