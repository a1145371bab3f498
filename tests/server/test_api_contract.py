"""What any client can rely on without training: auth, OpenAI's error shape, pagination, upload safety,
job creation rules, cancel/pause/resume of waiting jobs, and chat with a base model."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from typer.testing import CliRunner

from tests.server.live_server import running_server, wait_for, write_chat_file
from tunesmith.cli import app
from tunesmith.server.settings import ServerSettings

KEY = "contract-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("data"), api_key=KEY, max_upload_bytes=64 * 1024)
    with running_server(settings) as url:  # no workers: jobs stay queued
        yield url, settings


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def training_file(client, tmp_path_factory):
    path = write_chat_file(tmp_path_factory.mktemp("upload") / "train.jsonl")
    return client.files.create(file=path.open("rb"), purpose="fine-tune")


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_api_key_is_required_as_bearer_or_api_key_header(server, client):
    url = server[0]
    assert_openai_error(httpx.get(url + "/v1/models"), 401, "invalid_api_key")
    assert_openai_error(httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
    assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(url + "/openai/models", headers={"api-key": KEY}).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert "/v1/fine_tuning/jobs" in httpx.get(url + "/openapi.json").json()["paths"]


def test_errors_have_openai_shape(server, client):
    url, headers = server[0], {"Authorization": f"Bearer {KEY}"}
    error = assert_openai_error(httpx.get(url + "/v1/files/file-nope", headers=headers), 404)
    assert error["param"] == "file_id"
    assert_openai_error(httpx.get(url + "/v1/no/such/route", headers=headers), 404)
    error = assert_openai_error(httpx.post(url + "/v1/fine_tuning/jobs", headers=headers, json={"model": 3}), 400)
    assert error["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert err.value.code == "fine_tuning_job_not_found"


def test_upload_limit_and_names_never_become_paths(server, client, tmp_path):
    _url, settings = server
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * (settings.max_upload_bytes + 1))
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=big.open("rb"), purpose="fine-tune")
    assert err.value.status_code == 413 and err.value.code == "file_too_large"
    sneaky = client.files.create(file=("../../outside.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
    assert sneaky.filename == "outside.jsonl" and sneaky.status == "error"
    stored = sorted(p.name for p in (settings.data_dir / "files").iterdir())
    assert f"{sneaky.id}.jsonl" in stored and all(name.startswith("file-") for name in stored)
    assert not (settings.data_dir.parent / "outside.jsonl").exists()


def test_file_list_pages(client, training_file):
    ids = [client.files.create(file=("f.jsonl", b"{}\n"), purpose="user_data").id for _ in range(3)]
    page = client.files.list(limit=2, purpose="user_data")
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    assert [f.id for f in client.files.list(limit=2, purpose="user_data")] == ids[::-1]  # follows `after`
    assert [f.id for f in client.files.list(order="asc", purpose="user_data")] == ids


def test_job_creation_rules_and_legacy_hyperparameters(client, training_file):
    job = client.fine_tuning.jobs.create(model="tiny-random", training_file=training_file.id,
                                         hyperparameters={"n_epochs": 3, "learning_rate_multiplier": 0.5})
    assert job.hyperparameters.n_epochs == 3 and job.method.supervised.hyperparameters.learning_rate_multiplier == 0.5
    assert job.hyperparameters.batch_size == "auto" and job.organization_id and job.result_files == []
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny-random", training_file=training_file.id,
                                       method={"type": "supervised",
                                               "supervised": {"hyperparameters": {"n_epochs": 0}}})
    assert err.value.param == "method.supervised.hyperparameters.n_epochs"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny-random", training_file="file-missing")
    assert err.value.param == "training_file"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="gpt-4-0613", training_file=training_file.id)
    assert err.value.param == "model"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny-random", training_file=training_file.id, suffix="a:b")
    assert err.value.param == "suffix"


def test_job_list_cancel_pause_resume_while_waiting(client, training_file):
    ids = [client.fine_tuning.jobs.create(model="tiny-random", training_file=training_file.id,
                                          metadata={"batch": "control"}).id for _ in range(3)]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    listed = [j.id for j in client.fine_tuning.jobs.list(limit=2, metadata={"batch": "control"})]
    assert listed == ids[::-1]
    wait_for(lambda: client.fine_tuning.jobs.retrieve(ids[0]).status != "validating_files", timeout=60,
             what="validation")
    assert client.fine_tuning.jobs.retrieve(ids[0]).status == "queued", client.fine_tuning.jobs.retrieve(ids[0])
    assert client.fine_tuning.jobs.pause(ids[0]).status == "paused"
    assert client.fine_tuning.jobs.resume(ids[0]).status == "queued"
    assert client.fine_tuning.jobs.cancel(ids[0]).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.cancel(ids[0])
    assert err.value.code == "job_already_finished"
    events = [e.message for e in client.fine_tuning.jobs.list_events(ids[0], limit=50)]
    assert events[0] == "The job was cancelled" and events[-1].startswith("Created fine-tuning job")


def test_chat_with_a_base_model(client):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Say something."}]}]
    full = client.chat.completions.create(model="tiny-random", messages=messages, max_tokens=6, temperature=0)
    text = full.choices[0].message.content
    assert full.usage.completion_tokens <= 6
    if full.choices[0].finish_reason == "length" and len(text) >= 4:
        stop = text[2:4]
        cut = client.chat.completions.create(model="tiny-random", messages=messages, max_tokens=6, temperature=0,
                                             stop=[stop])
        assert cut.choices[0].message.content == text[:text.find(stop)]
        assert cut.choices[0].finish_reason == "stop"
    a = client.chat.completions.create(model="tiny-random", messages=messages, max_tokens=5, seed=3, n=2)
    b = client.chat.completions.create(model="tiny-random", messages=messages, max_tokens=5, seed=3, n=2)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]  # seed repeats
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=messages)
    assert err.value.code == "model_not_found"


def test_serve_refuses_public_bind_without_key(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)], env={})
    assert result.exit_code == 2 and "without an API key" in result.output


def test_results_file_is_served_base64_as_openai_does_or_raw_when_asked(server, client, tmp_path):
    from tunesmith.jobs.files import add_result_file
    from tunesmith.jobs.store import JobStore, default_db_url

    url, settings = server
    csv = tmp_path / "results.csv"
    csv.write_text("step,train_loss\n1,2.5\n")
    record = add_result_file(JobStore(default_db_url(settings.data_dir)), settings.data_dir, csv, "results.csv")
    served = client.files.content(record.id).read()
    assert base64.b64decode(served, validate=True) == csv.read_bytes()
    settings.results_encoding = "raw"
    try:
        assert client.files.content(record.id).read() == csv.read_bytes()
    finally:
        settings.results_encoding = "base64"
