"""Per-example losses (example_losses.csv): a mislabelled line stands out, the figures add up to the step
losses, a resume neither loses nor duplicates rows, and the studio endpoint serves them with their text."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunesmith.train_config import TrainConfig
from tunesmith.training.example_loss import (
    FILE_NAME, Z_THRESHOLD, highest_losses, outliers, read_rows, robust_z_scores, write_epoch,
)
from tunesmith.training.sft import epoch_order, plan, train

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "pink", "brown", "grey", "cyan",
           "gold"]
MISLABELLED_LINE = 7
N_EPOCHS, BATCH_SIZE = 3, 2


def write_sky_file(path: Path) -> Path:
    """13 questions whose answer is always "Blue.", except line 7, which breaks the rule."""
    with open(path, "w") as f:
        for i, colour in enumerate(COLOURS):
            answer = "Purple banana seven." if i + 1 == MISLABELLED_LINE else "Blue."
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What colour is the sky? Question {i}, {colour}."},
                {"role": "assistant", "content": answer}]}) + "\n")
    return path


def sky_config(data: Path, output: Path) -> TrainConfig:
    return TrainConfig(model="tiny-random", train=data, n_epochs=N_EPOCHS, batch_size=BATCH_SIZE, seed=1,
                       learning_rate_multiplier=4.0, output=output, dtype="float32")


@pytest.fixture(scope="module")
def sky_run(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("sky")
    data = write_sky_file(root / "train.jsonl")
    result = train(sky_config(data, root / "run"))
    assert result.status == "succeeded"
    return SimpleNamespace(data=data, run_dir=result.run_dir, root=root)


def test_the_mislabelled_line_is_the_top_outlier_and_the_event_names_it(sky_run):
    rows = read_rows(sky_run.run_dir)
    assert sorted({r["epoch"] for r in rows}) == [1, 2, 3]
    assert sorted(r["line"] for r in rows if r["epoch"] == 3) == list(range(1, 14))  # every line, once
    found = outliers(sky_run.run_dir)
    assert [e.line for e in found] == [MISLABELLED_LINE]
    assert found[0].z > Z_THRESHOLD and found[0].epoch == N_EPOCHS
    assert highest_losses(sky_run.run_dir, top=3)[0].line == MISLABELLED_LINE
    messages = [json.loads(line)["message"] for line in (sky_run.run_dir / "events.jsonl").read_text().splitlines()]
    warning = [m for m in messages if "unusually high loss" in m]
    assert warning == [f"1 training example has unusually high loss (line {MISLABELLED_LINE}): "
                       "check it for a labelling error"]
    assert messages[-1] == "The job has successfully completed"  # the warning comes before the final event


def test_per_example_figures_add_up_to_the_step_losses(sky_run):
    data = plan(sky_config(sky_run.data, sky_run.root / "unused")).data
    trained_by_line = {line: e.n_trained for line, e in zip(data.train_lines, data.train)}
    with open(sky_run.run_dir / "results.csv") as f:
        step_losses = [float(r["train_loss"]) for r in csv.DictReader(f)]
    steps_per_epoch = -(-len(data.train) // BATCH_SIZE)
    rows = read_rows(sky_run.run_dir)
    for epoch in range(1, N_EPOCHS + 1):
        mine = [r for r in rows if r["epoch"] == epoch]
        assert {r["line"]: r["trained_tokens"] for r in mine} == trained_by_line
        # The epoch's mean train loss, each step weighted by its trained tokens (what the step averaged over).
        order = epoch_order(len(data.train), 1, epoch - 1)
        weighted, tokens = 0.0, 0
        for k in range(steps_per_epoch):
            step_tokens = sum(data.train[i].n_trained for i in order[k * BATCH_SIZE : (k + 1) * BATCH_SIZE])
            weighted += step_losses[(epoch - 1) * steps_per_epoch + k] * step_tokens
            tokens += step_tokens
        per_example = sum(r["mean_loss"] * r["trained_tokens"] for r in mine) / sum(r["trained_tokens"] for r in mine)
        assert tokens == sum(r["trained_tokens"] for r in mine)
        assert per_example == pytest.approx(weighted / tokens, rel=1e-5)


def test_a_resume_mid_epoch_writes_what_an_uninterrupted_run_does(sky_run, tmp_path):
    calls = {"n": 0}

    def pause_at_step_3() -> str | None:  # mid-epoch 1: the checkpoint must carry the epoch's tally so far
        calls["n"] += 1
        return "pause" if calls["n"] == 3 else None

    config = sky_config(sky_run.data, tmp_path / "paused")
    paused = train(config, should_stop=pause_at_step_3)
    assert paused.status == "paused" and not (paused.run_dir / FILE_NAME).exists()
    from tunesmith.training.sft import resume

    assert resume(paused.run_dir).status == "succeeded"
    resumed, reference = read_rows(paused.run_dir), read_rows(sky_run.run_dir)
    assert [(r["epoch"], r["line"], r["trained_tokens"]) for r in resumed] == \
        [(r["epoch"], r["line"], r["trained_tokens"]) for r in reference]
    assert [r["mean_loss"] for r in resumed] == pytest.approx([r["mean_loss"] for r in reference], rel=1e-5)


def test_an_epoch_written_again_replaces_its_rows(tmp_path):
    first = [{"epoch": 1, "line": 1, "mean_loss": 2.0, "trained_tokens": 3}]
    write_epoch(tmp_path, 1, first)
    write_epoch(tmp_path, 2, [{"epoch": 2, "line": 1, "mean_loss": 1.5, "trained_tokens": 3}])
    write_epoch(tmp_path, 2, [{"epoch": 2, "line": 1, "mean_loss": 1.25, "trained_tokens": 3}])  # a replayed epoch
    assert read_rows(tmp_path) == first + [{"epoch": 2, "line": 1, "mean_loss": 1.25, "trained_tokens": 3}]


def test_robust_z_ignores_the_outlier_it_scores():
    scores = robust_z_scores([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 9.0])
    assert scores[-1] > 50 and all(abs(z) < 1.5 for z in scores[:-1])
    assert robust_z_scores([2.0, 2.0, 2.0, 2.0]) == [0.0] * 4
    assert robust_z_scores([2.0] * 9 + [5.0])[-1] > Z_THRESHOLD  # MAD 0: the mean deviation stands in


def test_endpoint_serves_the_highest_losses_with_their_text(sky_run, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tunesmith.jobs.files import file_path
    from tunesmith.jobs.store import FileRecord, JobRecord, JobStore, default_db_url, now
    from tunesmith.server import ui_api
    from tunesmith.server.settings import ServerSettings

    store = JobStore(default_db_url(tmp_path))
    try:
        record = FileRecord(id="file-sky", filename="sky.jsonl", purpose="fine-tune", bytes=1, created_at=now(),
                            status="processed")
        store.add_file(record)
        shutil.copy(sky_run.data, file_path(tmp_path, record))
        store.add_job(JobRecord(id="ftjob-sky", model="tiny-random", training_file="file-sky", hyperparameters={},
                                seed=1, status="succeeded", created_at=now(), result_files=[]))
        run_dir = tmp_path / "runs" / "ftjob-sky"
        run_dir.mkdir(parents=True)
        shutil.copy(sky_run.run_dir / FILE_NAME, run_dir / FILE_NAME)
        app = FastAPI()
        app.state.tunesmith = SimpleNamespace(store=store, data_dir=tmp_path,
                                              settings=ServerSettings(data_dir=tmp_path))
        app.include_router(ui_api.router)
        client = TestClient(app)

        body = client.get("/ui-api/jobs/ftjob-sky/example-losses?top=5").json()
        assert body["epoch"] == N_EPOCHS and len(body["rows"]) == 5
        top = body["rows"][0]
        assert top["line"] == MISLABELLED_LINE and top["outlier"] and top["z"] > Z_THRESHOLD
        assert top["assistant"] == "Purple banana seven." and top["user"].startswith("What colour is the sky?")
        assert top["trained_tokens"] > 0 and not body["rows"][1]["outlier"]
        assert body["rows"][1]["assistant"] == "Blue."
        assert client.get("/ui-api/jobs/ftjob-nope/example-losses").status_code == 404
        store.add_job(JobRecord(id="ftjob-new", model="tiny-random", training_file="file-sky", hyperparameters={},
                                seed=1, status="queued", created_at=now(), result_files=[]))
        assert client.get("/ui-api/jobs/ftjob-new/example-losses").json()["rows"] == []  # no epoch ended yet
    finally:
        store.close()


def test_every_target_names_the_example_it_belongs_to():
    from tunesmith.training.collate import collate_step
    from tunesmith.training.render import TokenizedExample

    examples = [TokenizedExample([7] * n, [False] * (n - k) + [True] * k) for n, k in [(9, 3), (4, 2), (6, 5), (3, 1)]]
    batches = collate_step(examples, micro_batch_tokens=12, pad_id=0)
    assert len(batches) > 1  # several micro-batches, some rows packed
    counts = [0] * len(examples)
    for mb in batches:
        assert mb.target_example.shape == mb.target_ids.shape
        for index in mb.target_example.tolist():
            counts[index] += 1
    assert counts == [e.n_trained for e in examples]


def test_a_converged_run_flags_no_outlier_however_small_its_spread(tmp_path):
    from tunesmith.training.example_loss import outliers, write_epoch

    losses = [0.001] * 20 + [0.03]  # z is huge (tiny MAD), yet every answer is learned
    write_epoch(tmp_path, 1, [{"epoch": 1, "line": i + 1, "mean_loss": x, "trained_tokens": 10}
                              for i, x in enumerate(losses)])
    assert outliers(tmp_path) == []
    write_epoch(tmp_path, 1, [{"epoch": 1, "line": i + 1, "mean_loss": x, "trained_tokens": 10}
                              for i, x in enumerate(losses[:-1] + [2.5])])
    assert [e.line for e in outliers(tmp_path)] == [21]
