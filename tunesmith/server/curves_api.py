"""Learning curves in the studio, read-only, under `/ui-api/curves`: the curve directories under
`<data dir>/curves/` and beside the eval dirs the server was given (`tunesmith serve --evals-dir DIR`).

A curve's id is its folder name; only folders found there are ever read (an id never becomes a path).
The plot comes inline (base64 PNG) so the page can show it with the same API key as every other call.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from tunesmith.artifacts.curve_dir import CurveDirError, find_curve_dirs, read_curve
from tunesmith.server.settings import server_state
from tunesmith.server.ui_api import client_view

router = APIRouter(prefix="/ui-api", tags=["studio"])


def _roots(request: Request) -> list[Path]:
    state = server_state(request)
    return [state.data_dir / "curves", *state.settings.eval_dirs]


def _known(request: Request) -> dict[str, Path]:
    return {path.name: path for path in reversed(find_curve_dirs(_roots(request)))}  # newest wins a name


@router.get("/curves")
def list_curves(request: Request) -> dict[str, Any]:
    out = []
    for curve_id, path in _known(request).items():
        try:
            curve = read_curve(path)
        except CurveDirError as e:
            out.append({"id": curve_id, "error": str(e)})
            continue
        out.append({"id": curve_id, "model": curve.get("model"), "metric": curve.get("metric"),
                    "n_test_items": curve.get("n_test_items"), "n_points": len(curve["points"]),
                    "verdict": curve["verdict"]})
    return client_view({"object": "list", "data": out, "roots": [str(r) for r in _roots(request)]}, request)


@router.get("/curves/{curve_id}")
def get_curve(curve_id: str, request: Request) -> dict[str, Any]:
    path = _known(request).get(curve_id)
    if path is None:
        raise HTTPException(404, {"error": {"message": f"no curve {curve_id!r}; see /ui-api/curves",
                                            "type": "invalid_request_error", "param": "curve_id",
                                            "code": "not_found"}})
    try:
        curve = read_curve(path)
    except CurveDirError as e:
        raise HTTPException(400, {"error": {"message": client_view(str(e), request), "type": "invalid_request_error",
                                            "param": "curve_id", "code": None}}) from e
    plot = path / str(curve.get("plot") or "curve.png")
    png = base64.b64encode(plot.read_bytes()).decode() if plot.is_file() and plot.parent == path else None
    return {**client_view({"id": curve_id, **curve}, request), "plot_png_base64": png}
