"""The studio's read-only endpoints, against a store and data directory laid out as the server keeps them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.ui.fixtures import QUESTIONS, write_eval_pair
from tunesmith.jobs.store import FileRecord, JobRecord, JobStore, default_db_url, now
from tunesmith.server import ui_api
from tunesmith.server.settings import ServerSettings


@pytest.fixture
def studio(tmp_path: Path):
    store = JobStore(default_db_url(tmp_path))
    app = FastAPI()
    app.state.tunesmith = SimpleNamespace(store=store, data_dir=tmp_path, settings=ServerSettings(data_dir=tmp_path))
    app.include_router(ui_api.router)
    yield SimpleNamespace(client=TestClient(app), store=store, data_dir=tmp_path)
    store.close()


def test_catalog_lists_local_and_provider_models(studio):
    body = studio.client.get("/ui-api/catalog").json()
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["tiny-random"]["local"] and not by_id["gpt-35-turbo-0125"]["local"]
    assert body["default"] in by_id


def test_report_turns_the_stored_histogram_into_chart_bins(studio):
    report = {"ok": False, "n_examples": 3,
              "errors": [{"line": 2, "code": "unrecognized_role", "message": "role 'robot'", "field": "messages[0].role"}],
              "warnings": [], "stats": {"tokens": {"min": 10, "max": 29}, "histogram": [{"lo": 10, "hi": 19, "count": 2}, {"lo": 20, "hi": 29, "count": 1}],
                                        "billing_tokens": 300, "default_n_epochs": 34}}
    studio.store.add_file(FileRecord(id="file-abc", filename="d.jsonl", purpose="fine-tune", bytes=10,
                                     created_at=now(), status="error", report=report))
    body = studio.client.get("/ui-api/files/file-abc/report").json()
    assert body["token_histogram"] == {"edges": [10, 20, 30], "counts": [2, 1]}
    assert body["errors"][0]["line"] == 2 and not body["ok"]
    assert studio.client.get("/ui-api/files/file-nope/report").status_code == 404


def test_metrics_reads_results_csv_of_the_jobs_run_dir(studio):
    studio.store.add_job(JobRecord(id="ftjob-x", model="tiny-random", training_file="file-abc", hyperparameters={},
                                   seed=1, status="running", created_at=now(), result_files=[]))
    run = studio.data_dir / "runs" / "ftjob-x"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("step,train_loss,train_mean_token_accuracy,valid_loss\n1,2.5,0.1,\n2,2.0,0.2,2.2\n")
    (run / "state.json").write_text('{"status": "running", "step": 2, "total_steps": 10}')
    body = studio.client.get("/ui-api/jobs/ftjob-x/metrics").json()
    assert [r["step"] for r in body["rows"]] == [1, 2]
    assert body["rows"][1]["valid_loss"] == 2.2 and "valid_loss" not in body["rows"][0]
    assert body["state"]["total_steps"] == 10


def test_compare_gives_verdicts_and_the_outputs_of_fixed_and_broken_items(studio):
    base, tuned = write_eval_pair(studio.data_dir / "evals")
    listed = studio.client.get("/ui-api/evals").json()["data"]
    assert [e["id"] for e in listed] == [tuned, base]  # newest first
    body = studio.client.get(f"/ui-api/compare?ids={base},{tuned}").json()
    row = body["comparisons"][0]["graders"][0]
    assert row["verdict"] == "Improved" and row["n_fixed"] == 8 and len(row["broken"]) == 1
    assert body["comparisons"][0]["paired"] == 12 and body["comparisons"][0]["problem"] is None
    item = body["items"][row["broken"][0]]  # items are named by their pairing key; each eval's own id beside it
    assert item["outputs"][base]["id"] == "q02" and item["messages"][-1]["content"] == QUESTIONS[2][0]
    assert item["outputs"][base]["output"] == item["reference"] != item["outputs"][tuned]["output"]


def test_compare_pairs_as_the_cli_does_and_says_when_evals_do_not_pair(studio):
    """The page pairs by question like `tunesmith compare`: another test file pairs nothing, and it says why."""
    base, tuned = write_eval_pair(studio.data_dir / "evals")
    other = studio.data_dir / "evals" / "other-file"
    other.mkdir()
    rows = [json.loads(line) for line in (studio.data_dir / "evals" / tuned / "predictions.jsonl").read_text().splitlines()]
    for row in rows:
        row["messages"] = [{"role": "user", "content": row["messages"][-1]["content"] + " Show your work."}]
    (other / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((studio.data_dir / "evals" / tuned / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "data": "other.jsonl"}))
    body = studio.client.get(f"/ui-api/compare?ids={base},other-file").json()
    cmp = body["comparisons"][0]
    assert cmp["paired"] == 0 and cmp["graders"] == [] and "different test files" in cmp["problem"]
    assert any("does not pair" in w for w in body["warnings"])
    by_line = studio.client.get(f"/ui-api/compare?ids={base},other-file&pair_by=line").json()
    assert by_line["comparisons"][0]["paired"] == 12 and by_line["comparisons"][0]["graders"][0]["verdict"] == "Improved"
    assert studio.client.get(f"/ui-api/compare?ids={base},{tuned}&pair_by=nearest").status_code == 400


def test_compare_refuses_paths_it_did_not_list(studio):
    write_eval_pair(studio.data_dir / "evals")
    assert studio.client.get("/ui-api/compare?ids=baseline-fewshot,../../etc").status_code == 404
    assert studio.client.get("/ui-api/compare?ids=baseline-fewshot").status_code == 400


def test_eval_runs_kept_elsewhere_are_listed_when_the_server_is_told_where(studio, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("demo") / "evals"
    base, tuned = write_eval_pair(elsewhere)
    assert studio.client.get("/ui-api/evals").json()["data"] == []
    studio.client.app.state.tunesmith.settings.eval_dirs.append(elsewhere)  # what `serve --evals-dir` sets
    body = studio.client.get("/ui-api/evals").json()
    assert {e["id"] for e in body["data"]} == {base, tuned} and body["roots"] == ["<data dir>/evals", ".../evals"]  # no server path
    assert studio.client.get(f"/ui-api/compare?ids={base},{tuned}").status_code == 200


def test_an_eval_run_with_default_options_appears_in_the_studio(studio, monkeypatch):
    from typer.testing import CliRunner

    from tests.evaluate.test_cli import write_test_file
    from tunesmith.cli import app

    monkeypatch.setenv("TUNESMITH_HOME", str(studio.data_dir))  # the data dir the studio serves
    monkeypatch.chdir(studio.data_dir.parent)
    data = write_test_file(studio.data_dir.parent / "test.jsonl", n=3)
    result = CliRunner().invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--grader", "exact",
                                      "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    listed = studio.client.get("/ui-api/evals").json()["data"]
    assert [(e["model"], e["strategy"], e["n"]) for e in listed] == [("tiny-random", "zero-shot", 3)]
