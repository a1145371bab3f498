"""Issue 15's last items, through HTTP: no API answer, event or error message shows the server's absolute paths;
every number of the studio's cost form is finite and in range; a job on a closed provider model says why with
the catalog's dated line."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server.live_server import running_server, running_workers, wait_for, write_chat_file
from tests.ui.fixtures import write_eval_dir, write_eval_pair
from tunesmith.catalog import closed_status_line, get_model_spec
from tunesmith.server.app import create_app
from tunesmith.server.settings import ServerSettings

LONG = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 1}}}  # 36 steps


def absolute_forms(path: Path) -> set[str]:
    return {str(path), str(path.resolve())}


def assert_no_server_path(text: str, *paths: Path) -> None:
    for path in paths:
        for form in absolute_forms(path):
            assert form not in text, f"{form} shown to the client: {text[:2000]}"


@pytest.fixture
def studio(tmp_path):
    """The whole app (error handlers included) in process; `testserver` is the TestClient's Host."""
    elsewhere = tmp_path / "kept-elsewhere"
    settings = ServerSettings(data_dir=tmp_path / "data", eval_dirs=[elsewhere], allowed_hosts=["testserver"])
    with TestClient(create_app(settings)) as client:
        yield client, settings, elsewhere


def upload(client, path: Path, purpose: str = "fine-tune") -> str:
    with path.open("rb") as f:
        response = client.post("/v1/files", data={"purpose": purpose}, files={"file": (path.name, f)})
    assert response.status_code == 200, response.text
    return response.json()["id"]


# --- absolute paths ---------------------------------------------------------------------------------------------
def test_paused_job_events_name_the_run_dir_in_the_data_dir(tmp_path):
    """The trainer's pause event says how to continue (`--resume RUN_DIR`): the API shows that run dir
    relative to the data dir, and nothing in the job, its events or its metrics shows the absolute path."""
    settings = ServerSettings(data_dir=tmp_path / "data")
    with running_server(settings) as url, running_workers(settings.data_dir), httpx.Client(base_url=url,
                                                                                           timeout=60) as http:
        file_id = upload(http, write_chat_file(tmp_path / "t.jsonl"))
        job = http.post("/v1/fine_tuning/jobs", json={"model": "tiny-random", "training_file": file_id,
                                                      "method": LONG}).json()
        wait_for(lambda: http.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "running", 120,
                 what="a worker to claim it")
        http.post(f"/v1/fine_tuning/jobs/{job['id']}/pause").raise_for_status()
        wait_for(lambda: http.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "paused", 120,
                 what="the pause")
        events = http.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 1000})
        answers = [events.text, http.get(f"/v1/fine_tuning/jobs/{job['id']}").text,
                   http.get(f"/ui-api/jobs/{job['id']}/metrics").text, http.get("/v1/fine_tuning/jobs").text]
        http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    messages = [e["message"] for e in events.json()["data"]]
    assert any(f"--resume <data dir>/runs/{job['id']}" in m for m in messages), messages
    for text in answers:
        assert_no_server_path(text, settings.data_dir)


def test_evals_list_names_its_roots_without_server_paths(studio):
    client, settings, elsewhere = studio
    write_eval_pair(settings.data_dir / "evals")
    run_dir = settings.data_dir / "runs" / "ftjob-abc"  # `tunesmith eval <run dir> …` records the model so
    write_eval_dir(elsewhere / "tuned", str(run_dir), "zero-shot", {1, 2}, "2026-11-28T00:00:00Z")
    body = client.get("/ui-api/evals")
    assert body.status_code == 200
    assert_no_server_path(body.text, settings.data_dir, elsewhere)
    assert body.json()["roots"] == ["<data dir>/evals", ".../kept-elsewhere"]
    tuned = next(e for e in body.json()["data"] if e["id"] == "tuned")
    assert tuned["model"] == "<data dir>/runs/ftjob-abc"


def test_compare_of_a_broken_eval_is_a_400_naming_the_file_in_the_data_dir(studio):
    client, settings, _ = studio
    base, _tuned = write_eval_pair(settings.data_dir / "evals")
    broken = write_eval_dir(settings.data_dir / "evals" / "broken", "tiny-random", "zero-shot", {1},
                            "2026-11-28T00:00:00Z")
    (broken / "predictions.jsonl").write_text('{"id": "q00", "output": \n')
    response = client.get("/ui-api/compare", params={"ids": f"{base},broken"})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "<data dir>/evals/broken/predictions.jsonl" in message, message
    assert_no_server_path(response.text, settings.data_dir)


def test_a_file_report_names_the_upload_by_its_own_name(studio, tmp_path):
    """The validator names a file by the path it read (the upload's path on the server); the report does not."""
    client, settings, _ = studio
    gz = tmp_path / "train.jsonl"
    gz.write_bytes(gzip.compress(write_chat_file(tmp_path / "plain.jsonl").read_bytes()))
    file_id = upload(client, gz)
    for model in (None, "tiny-random"):
        response = client.get(f"/ui-api/files/{file_id}/report", params={"model": model} if model else {})
        assert response.status_code == 200, response.text
        assert_no_server_path(response.text, settings.data_dir)
        assert response.json()["errors"], response.json()


def test_hidden_paths_keep_the_data_dir_layout_and_api_routes(tmp_path):
    """What a 500's message (an exception's text) becomes: data-dir paths relative to it, other paths cut to
    their last part, and an API route in a hint left as it is."""
    from tunesmith.server.errors import hide_server_paths

    data = tmp_path / "data"
    library = Path(os.__file__).resolve()
    shown = hide_server_paths(f"FileNotFoundError: No such file: '{data.resolve()}/runs/ftjob-x/config.json' "
                              f"(from {library}); see /ui-api/catalog", data)
    assert "'<data dir>/runs/ftjob-x/config.json'" in shown
    assert f".../{library.name}" in shown and "/ui-api/catalog" in shown
    assert_no_server_path(shown, data, library.parent)


# --- the studio's cost form ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["gpu_hour_price", "requests_per_day", "prompt_tokens_before",
                                   "prompt_tokens_after", "completion_tokens"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e308"])
def test_cost_numbers_are_finite_and_in_range(studio, tmp_path, field, value):
    client, _settings, _ = studio
    file_id = upload(client, write_chat_file(tmp_path / "t.jsonl"))
    response = client.get("/ui-api/cost", params={"file_id": file_id, "model": "tiny-random", field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_cost_still_takes_real_numbers(studio, tmp_path):
    client, _settings, _ = studio
    file_id = upload(client, write_chat_file(tmp_path / "t.jsonl"))
    response = client.get("/ui-api/cost", params={"file_id": file_id, "model": "tiny-random", "gpu_hour_price": 2.5,
                                                  "requests_per_day": 1000, "prompt_tokens_before": 590,
                                                  "prompt_tokens_after": 60, "completion_tokens": 20})
    assert response.status_code == 200, response.text
    assert json.dumps(response.json())


# --- closed provider models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["babbage-002", "gpt-35-turbo-0125"])
def test_a_job_on_a_closed_provider_model_says_why_with_the_catalogs_line(studio, tmp_path, model):
    client, _settings, _ = studio
    file_id = upload(client, write_chat_file(tmp_path / "t.jsonl"))
    response = client.post("/v1/fine_tuning/jobs", json={"model": model, "training_file": file_id})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    line = closed_status_line(get_model_spec(model))
    assert line and line in error["message"], error
    assert error["param"] == "model" and error["code"] == "model_not_available"
