"""The whole fine-tuning flow through the official `openai` SDK against a real server (tiny-random, CPU)."""

from __future__ import annotations

import base64

import openai
import pytest

from tests.server.live_server import running_server, running_workers, wait_for, write_chat_file
from tunesmith.server.settings import ServerSettings

API_KEY = "test-key"
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture()
def server(tmp_path):
    settings = ServerSettings(data_dir=tmp_path / "data", api_key=API_KEY)
    with running_server(settings) as url, running_workers(settings.data_dir):
        yield url, settings


def _poll_job(client, job_id: str):
    return wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job_id)).status in TERMINAL and j,
                    what=f"job {job_id} to finish")


def _flow(client, tmp_path, *, deployment_calls: bool = False) -> None:
    train = write_chat_file(tmp_path / "train.jsonl")
    uploaded = client.files.create(file=train.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.status == "processed"
    assert uploaded.filename == "train.jsonl" and uploaded.bytes == train.stat().st_size
    assert client.files.content(uploaded.id).read() == train.read_bytes()

    job = client.fine_tuning.jobs.create(
        model="tiny-random", training_file=uploaded.id, suffix="e2e", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}},
        metadata={"purpose": "test"},
    )
    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == "auto"

    done = _poll_job(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny-random:e2e:{job.id.removeprefix('ftjob-')}"
    assert done.trained_tokens and done.trained_tokens > 0
    assert done.hyperparameters.batch_size == 4 and isinstance(done.hyperparameters.learning_rate_multiplier, float)
    assert len(done.result_files) == 1
    results = base64.b64decode(client.files.content(done.result_files[0]).read()).decode()  # as OpenAI serves it
    assert results.startswith("step,train_loss") and len(results.strip().splitlines()) == 1 + 6  # 12/4 × 2 epochs

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))  # pages of 3: exercises `after`
    messages = [e.message for e in events]
    assert messages[-1] == f"Created fine-tuning job: {job.id}"  # newest first
    assert any(m.startswith("Step 6/6") for m in messages)
    assert messages[0] == "The job has successfully completed"  # OpenAI's order, whatever the clock did
    assert messages[1].startswith("New fine-tuned model created")
    assert len({e.id for e in events}) == len(events)

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [6, 3]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-6"
    assert checkpoints[0].metrics.train_loss is not None

    model_ids = [m.id for m in client.models.list()]
    assert "tiny-random" in model_ids and done.fine_tuned_model in model_ids
    assert checkpoints[1].fine_tuned_model_checkpoint in model_ids

    chat = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=8, temperature=0,
                                          messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert chat.object == "chat.completion" and chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.completion_tokens >= 1 and chat.usage.prompt_tokens > 5
    answer = chat.choices[0].message.content

    stream = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=8, temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "What is the capital of France?"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer  # greedy: same text
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == chat.usage.total_tokens

    ckpt_chat = client.chat.completions.create(model=checkpoints[1].fine_tuned_model_checkpoint, max_tokens=4,
                                               messages=[{"role": "user", "content": "hi"}], n=2, seed=1)
    assert len(ckpt_chat.choices) == 2

    again = client.fine_tuning.jobs.create(model=done.fine_tuned_model, training_file=uploaded.id, suffix="more",
                                           hyperparameters={"n_epochs": 1, "batch_size": 12})
    again = _poll_job(client, again.id)  # continued fine-tuning: that adapter trains on
    assert again.status == "succeeded", again.error
    assert again.fine_tuned_model.startswith("ft:tiny-random:more:")
    assert client.chat.completions.create(model=again.fine_tuned_model, max_tokens=2,
                                          messages=[{"role": "user", "content": "hi"}]).choices

    assert client.models.delete(done.fine_tuned_model).deleted
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def _bad_file_flow(client, tmp_path) -> None:
    bad = write_chat_file(tmp_path / "few.jsonl", n=3)
    uploaded = client.files.create(file=bad.open("rb"), purpose="fine-tune")
    assert uploaded.status == "error" and "10" in uploaded.status_details
    job = client.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id)
    failed = _poll_job(client, job.id)
    assert failed.status == "failed"
    assert failed.error.code == "invalid_n_examples" and failed.error.param == "training_file"
    assert "3 example(s)" in failed.error.message
    assert client.fine_tuning.jobs.list_events(job.id).data[0].level == "error"


def test_openai_sdk_end_to_end(server, tmp_path):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    _flow(client, tmp_path)
    _bad_file_flow(client, tmp_path)


def test_azure_openai_sdk_end_to_end(server, tmp_path):
    url, _ = server
    client = openai.AzureOpenAI(azure_endpoint=url, api_key=API_KEY, api_version="2024-10-21", max_retries=0)
    _flow(client, tmp_path)
    _bad_file_flow(client, tmp_path)
