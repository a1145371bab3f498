"""The studio's read-only curve endpoints: the curves under the data dir, one curve with its plot, 404 for a
name that is not a curve found there (an id never becomes a path)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tunesmith.artifacts.curve_dir import CurveDir
from tunesmith.server import curves_api
from tunesmith.server.settings import ServerSettings

CURVE = {"model": "tiny-random", "metric": "exact", "n_test_items": 40, "plot": "curve.png",
         "points": [{"model": "tiny-random", "examples": 10, "score": 0.2, "ci_low": 0.1, "ci_high": 0.35}],
         "verdict": {"kind": "too noisy", "message": "too noisy to tell: add test items"}}


def _client(tmp_path):
    app = FastAPI()
    app.state.tunesmith = SimpleNamespace(data_dir=tmp_path, settings=ServerSettings(data_dir=tmp_path))
    app.include_router(curves_api.router)
    return TestClient(app)


def test_the_studio_lists_curves_and_shows_one_with_its_plot(tmp_path):
    folder = CurveDir(tmp_path / "curves" / "querylang")
    folder.write_curve(CURVE)
    folder.write_plot(b"\x89PNG\r\n\x1a\nfake")
    client = _client(tmp_path)
    listed = client.get("/ui-api/curves").json()["data"]
    assert [(c["id"], c["n_points"], c["verdict"]["kind"]) for c in listed] == [("querylang", 1, "too noisy")]
    one = client.get("/ui-api/curves/querylang").json()
    assert one["points"] == CURVE["points"] and one["verdict"] == CURVE["verdict"]
    assert base64.b64decode(one["plot_png_base64"]).startswith(b"\x89PNG")


def test_an_unknown_or_traversing_id_is_a_404_and_a_broken_curve_a_400(tmp_path):
    client = _client(tmp_path)
    assert client.get("/ui-api/curves/nope").status_code == 404
    assert client.get("/ui-api/curves/..%2F..%2Fetc").status_code == 404
    broken = tmp_path / "curves" / "broken"
    broken.mkdir(parents=True)
    (broken / "curve.json").write_text('{"points": [}')
    response = client.get("/ui-api/curves/broken")
    assert response.status_code == 400
    assert "curve.json: line 1: invalid JSON" in response.json()["detail"]["error"]["message"]
    assert client.get("/ui-api/curves").json()["data"][0]["error"].endswith("invalid JSON (Expecting value)")


def test_no_absolute_server_path_reaches_the_client(tmp_path):
    folder = CurveDir(tmp_path / "curves" / "querylang")
    elsewhere = tmp_path.parent / "datasets" / "train.jsonl"
    folder.write_curve({**CURVE, "train": str(elsewhere),
                        "points": [{**CURVE["points"][0], "run": str(tmp_path / "runs" / "run-1")}]})
    client = _client(tmp_path)
    listed, one = client.get("/ui-api/curves").text, client.get("/ui-api/curves/querylang").json()
    assert str(tmp_path) not in listed and str(tmp_path) not in str(one)
    assert one["points"][0]["run"] == "<data dir>/runs/run-1" and one["train"].endswith("train.jsonl")
