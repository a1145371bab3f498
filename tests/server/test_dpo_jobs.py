"""DPO jobs through the official `openai` SDK, unchanged, against a real server (tiny-random, CPU)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import openai
import pytest

from tests.server.live_server import running_server, running_workers, wait_for
from tunesmith.server.settings import ServerSettings

API_KEY = "test-key"
TERMINAL = ("succeeded", "failed", "cancelled")


def write_preference_file(path: Path, n: int = 12, bad_line: int | None = None) -> Path:
    """OpenAI's preference format: input, preferred_output, non_preferred_output per line."""
    rows = []
    for i in range(n):
        rows.append({"input": {"messages": [{"role": "system", "content": "Answer politely."},
                                            {"role": "user", "content": f"What is {i} plus {i}?"}]},
                     "preferred_output": [{"role": "assistant", "content": f"It is {2 * i}, happy to help."}],
                     "non_preferred_output": [{"role": "assistant", "content": f"{2 * i + 1}. Go away."}]})
    if bad_line is not None:
        rows[bad_line - 1]["non_preferred_output"] = [{"role": "user", "content": "not an answer"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def client(tmp_path):
    settings = ServerSettings(data_dir=tmp_path / "data", api_key=API_KEY)
    with running_server(settings) as url, running_workers(settings.data_dir):
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)


def _poll(client, job_id: str):
    return wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job_id)).status in TERMINAL and j,
                    what=f"job {job_id} to finish")


def test_dpo_job_trains_lists_and_chats(client, tmp_path):
    uploaded = client.files.create(file=write_preference_file(tmp_path / "pairs.jsonl").open("rb"),
                                   purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny-random", training_file=uploaded.id, suffix="dpo", seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2, "batch_size": 4}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2

    done = _poll(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.method.type == "dpo" and done.method.dpo.hyperparameters.batch_size == 4
    assert isinstance(done.method.dpo.hyperparameters.learning_rate_multiplier, float)
    results = base64.b64decode(client.files.content(done.result_files[0]).read()).decode().splitlines()
    header = results[0].split(",")
    for column in ("train_loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
        assert column in header
    assert len(results) == 1 + 6  # 12 pairs / 4 per step x 2 epochs
    first = dict(zip(header, results[1].split(",")))
    assert float(first["train_loss"]) == pytest.approx(0.693147, abs=1e-4)  # log 2: policy == reference

    studio = httpx.get(str(client.base_url).removesuffix("v1/") + f"ui-api/jobs/{job.id}/metrics",
                       headers={"Authorization": f"Bearer {API_KEY}"}).json()  # what the job page charts
    assert studio["rows"][-1]["rewards/accuracies"] >= 0 and "rewards/margins" in studio["rows"][-1]

    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[0] == "The job has successfully completed" and any(m.startswith("Step 6/6") for m in messages)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [6, 3]

    chat = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=6, temperature=0,
                                          messages=[{"role": "user", "content": "What is 2 plus 2?"}])
    assert chat.choices[0].message.content is not None and chat.usage.completion_tokens >= 1


def test_bad_preference_file_fails_the_job_with_its_line(client, tmp_path):
    uploaded = client.files.create(file=write_preference_file(tmp_path / "bad.jsonl", bad_line=5).open("rb"),
                                   purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1}}})
    done = _poll(client, job.id)
    assert done.status == "failed"
    assert done.error.code == "invalid_preference_output" and done.error.param == "training_file"
    assert "line 5" in done.error.message and uploaded.id in done.error.message


def test_chat_file_for_a_dpo_job_fails_and_bad_beta_is_a_400(client, tmp_path):
    from tests.server.live_server import write_chat_file

    uploaded = client.files.create(file=write_chat_file(tmp_path / "chat.jsonl").open("rb"), purpose="fine-tune")
    done = _poll(client, client.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                                        method={"type": "dpo"}).id)
    assert done.status == "failed" and done.error.code == "wrong_data_kind"
    for beta in (0, 2.5, -1, "high", True):
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(model="tiny-random", training_file=uploaded.id,
                                           method={"type": "dpo", "dpo": {"hyperparameters": {"beta": beta}}})
        assert e.value.body["param"].startswith("method.dpo.hyperparameters.beta"), e.value.body
