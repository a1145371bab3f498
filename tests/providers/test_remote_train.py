"""Provider models against a real second tunesmith server playing the provider (OpenAI and Azure clients):
idempotent job creation after a lost response, 429s, a dropped connection mid-job, a failed job, resume after
a crash, cancel, evaluation through chat completions and Azure's "not deployed"."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest

from tests.providers.fake_provider import ALIASES, API_KEY, KEY_ENV, fake_provider
from tests.server.live_server import wait_for, write_chat_file
from tunesmith.providers.client import make_client
from tunesmith.providers.config import ProviderConfig, ProviderError, add_provider
from tunesmith.generation.remote import generate_remote
from tunesmith.providers.remote_train import (FollowOptions, RemoteState, cancel_remote, is_remote_run,
                                              resume_remote, train_remote)
from tunesmith.train_config import build_config
from tunesmith.artifacts.run_dir import RESULTS_COLUMNS, RunFiles, results_rows

FAST = FollowOptions(poll_interval_s=0.2, patience_s=60)
pytestmark = pytest.mark.timeout(300)


@pytest.fixture()
def provider_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_MODEL_ALIASES", ALIASES)
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    with fake_provider(tmp_path / "provider") as fake:
        yield fake


def _openai(fake) -> ProviderConfig:
    return ProviderConfig(name="fake-openai", kind="openai", endpoint=fake.openai_endpoint(), api_key_env=KEY_ENV)


def _azure(fake) -> ProviderConfig:
    return ProviderConfig(name="fake-azure", kind="azure", endpoint=fake.url, api_key_env=KEY_ENV,
                          api_version="2024-10-21")


def _config(tmp_path, name: str = "run", **kw):
    train = write_chat_file(tmp_path / f"{name}-train.jsonl")
    return build_config({"model": "gpt-4o-mini-2024-07-18", "training_file": str(train), "n_epochs": 2, "batch_size": 4,
                         "suffix": "prov", "seed": 3, "output": str(tmp_path / name), **kw})


def _server_jobs(fake):
    return openai.OpenAI(base_url=fake.openai_endpoint(), api_key=API_KEY).fine_tuning.jobs.list(
        limit=100).data


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_openai_job_survives_lost_create_429s_and_a_dropped_connection(provider_env, tmp_path):
    fake = provider_env
    lost_create = fake.faults.fail("POST", r"/v1/fine_tuning/jobs$", status=502, after_app=True)
    client = make_client(_openai(fake), max_retries=1)
    config = _config(tmp_path)
    seen_metrics = threading.Event()
    outcome = {}

    def on_event(event):
        if event.get("type") == "metrics":
            seen_metrics.set()

    def run():
        outcome["result"] = train_remote(config, _openai(fake), client=client, on_event=on_event, options=FAST)

    thread = threading.Thread(target=run)
    thread.start()
    run_dir = tmp_path / "run"
    wait_for(lambda: (run_dir / "remote.json").is_file() and RemoteState.load(RunFiles(run_dir)).job_id,
             timeout=120, what="the job id in remote.json")
    assert json.loads((run_dir / "state.json").read_text())["status"] in ("queued", "running")
    fake.proxy.drop()  # the provider goes away mid-job…
    # …and when it is back, it is rate limiting: more 429s in a row than the SDK's own retries absorb.
    rate_limited = fake.faults.fail("GET", r"/v1/fine_tuning/jobs/[^/]+$", status=429, times=3)
    time.sleep(3)
    fake.proxy.restore()  # …and comes back
    thread.join(timeout=240)
    result = outcome["result"]

    assert result.status == "succeeded", result.error
    assert lost_create.hits == 1 and rate_limited.hits == 3
    jobs = _server_jobs(fake)
    assert [j.id for j in jobs] == [result.job_id]  # the lost create answer did not make a second job
    assert result.fine_tuned_model == jobs[0].fine_tuned_model
    assert result.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:prov:")

    assert is_remote_run(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "succeeded" and state["fine_tuned_model"] == result.fine_tuned_model
    assert state["trained_tokens"] > 0 and state["step"] == 6
    rows = results_rows(run_dir)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert list(rows[0]) == list(RESULTS_COLUMNS) and float(rows[0]["train_loss"]) > 0
    messages = [e["message"] for e in _events(run_dir)]
    assert any(m.startswith("Created fine-tuning job: ftjob-") for m in messages)  # the provider's own events
    assert any(m.startswith("Step 6/6") for m in messages)
    retries = [m for m in messages if "trying again" in m]  # each outage ridden out, and logged
    assert any("APIConnectionError" in m for m in retries) and any("RateLimitError" in m for m in retries)
    assert len({e["id"] for e in _events(run_dir)}) == len(messages)  # no event recorded twice
    config_json = json.loads((run_dir / "config.json").read_text())
    assert config_json["provider"] == "fake-openai" and config_json["model"] == "gpt-4o-mini-2024-07-18"


def test_azure_client_trains_and_evaluates_through_chat_completions(provider_env, tmp_path):
    fake = provider_env
    lost_create = fake.faults.fail("POST", r"^/openai/fine_tuning/jobs$", status=503, after_app=True)
    client = make_client(_azure(fake))
    assert isinstance(client, openai.AzureOpenAI)
    result = train_remote(_config(tmp_path, "az"), _azure(fake), client=client, options=FAST)
    assert result.status == "succeeded", result.error
    assert lost_create.hits == 1 and len(_server_jobs(fake)) == 1
    assert (tmp_path / "az" / "results.csv").read_text().startswith(",".join(RESULTS_COLUMNS))
    assert any("deploy" in e["message"] for e in _events(tmp_path / "az"))  # the user is told about deployment

    # The fake provider serves the fine-tuned model under its own name, as a deployment of that name.
    prompts = [[{"role": "user", "content": f"What is {i} plus {i}?"}] for i in range(3)]
    generations = generate_remote(client, result.fine_tuned_model, prompts, max_new_tokens=5, batch_size=2)
    assert len(generations) == 3
    assert all(g.prompt_tokens > 0 and 0 < g.completion_tokens <= 5 for g in generations)
    assert all(g.finish_reason in ("stop", "length") and g.latency_s > 0 for g in generations)

    with pytest.raises(ProviderError, match="DeploymentNotFound.*deployed"):
        generate_remote(client, "my-ft-deployment", prompts[:1], max_new_tokens=5)


def test_a_job_the_provider_fails_ends_the_run_failed_with_its_error(provider_env, tmp_path):
    fake = provider_env
    train = write_chat_file(tmp_path / "long.jsonl")
    # Under gpt-35-turbo's 16k limit, so it passes local validation; over the provider's (tiny-random's) 2k.
    long_example = {"messages": [{"role": "user", "content": "Summarise: " + "lorem ipsum dolor " * 900},
                                 {"role": "assistant", "content": "Lorem."}]}
    with train.open("a") as f:
        f.write(json.dumps(long_example) + "\n")
    config = build_config({"model": "gpt-4o-mini-2024-07-18", "training_file": str(train), "output": str(tmp_path / "f")})
    result = train_remote(config, _openai(fake), options=FAST)  # provider by config, key from the environment

    assert result.status == "failed"
    assert "too_many_tokens" in result.error
    state = json.loads((tmp_path / "f" / "state.json").read_text())
    assert state["status"] == "failed" and "too_many_tokens" in state["error"]
    assert not (tmp_path / "f" / "results.csv").exists()


def test_resume_after_a_crash_follows_the_same_job_without_uploading_again(provider_env, tmp_path):
    fake = provider_env
    client = make_client(_openai(fake))

    def crash_after_job_created(event):
        if event["message"].startswith("Created provider job"):
            raise RuntimeError("the machine died")

    with pytest.raises(RuntimeError, match="died"):
        train_remote(_config(tmp_path), _openai(fake), client=client, on_event=crash_after_job_created, options=FAST)
    remote = RemoteState.load(RunFiles(tmp_path / "run"))
    assert remote.job_id and remote.training_file_id
    assert json.loads((tmp_path / "run" / "state.json").read_text())["status"] == "queued"  # still going remotely
    assert any(e["message"].startswith("Stopped following (RuntimeError") for e in _events(tmp_path / "run"))

    result = resume_remote(tmp_path / "run", client=client, options=FAST)
    assert result.status == "succeeded" and result.job_id == remote.job_id
    assert len(_server_jobs(fake)) == 1
    assert len(client.files.list(purpose="fine-tune").data) == 1


def test_pause_resume_and_cancel_reach_the_provider_job(provider_env, tmp_path):
    fake = provider_env
    config = _config(tmp_path, "c", n_epochs=40, batch_size=1)
    steps = []

    def count_steps(event):
        if event.get("type") == "metrics":
            steps.append(event["data"]["step"])

    add_provider(_openai(fake))  # by name from here on: resume finds it in the store, as the CLI does
    paused = train_remote(config, "fake-openai", options=FAST, on_event=count_steps,
                          should_stop=lambda: "pause" if steps else False)
    assert paused.status == "paused" and _server_jobs(fake)[0].status == "paused"

    steps.clear()
    result = resume_remote(tmp_path / "c", options=FAST, on_event=count_steps, should_stop=lambda: bool(steps))
    assert result.status == "cancelled" and result.job_id == paused.job_id
    assert _server_jobs(fake)[0].status == "cancelled"
    assert json.loads((tmp_path / "c" / "state.json").read_text())["status"] == "cancelled"
    assert 0 < result.step < 40 * 12
    messages = [e["message"] for e in _events(tmp_path / "c")]
    assert any(m.startswith("Resumed provider job") for m in messages)
    with pytest.raises(ProviderError, match="did not cancel.*already"):
        cancel_remote(tmp_path / "c")
