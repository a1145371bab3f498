"""The curve directory: `tunesmith curve` writes it; the assessment, the studio and the report read it.

    <curve dir>/request.json          what was asked (model, files, graders, fractions, recipe): a resumed curve
                                       must ask the same, or its points would not belong on one curve
    <curve dir>/points/<id>/point.json one point's state: {"id", "model", "fraction", "examples", "status"
                                       ("trained" | "done"), "train_seconds", "eval_seconds", "n_epochs",
                                       "trained_tokens", "score", "ci_low", "ci_high", …}
    <curve dir>/points/<id>/train.jsonl the subset it trained on (chat JSONL)
    <curve dir>/points/<id>/run/      its run directory (artifacts.run_dir);  eval/  its eval directory
    <curve dir>/curve.json            the result: points, baselines, fit, projection, last doubling, verdict
    <curve dir>/curve.png             the plot

A point whose status is "done" is never trained or evaluated again. Every file is written to a temporary name
and renamed, so a killed curve leaves whole files only. This module is the one writer and the one reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tunesmith.paths import atomic_write_bytes, atomic_write_text

CURVE, REQUEST, PLOT, POINT = "curve.json", "request.json", "curve.png", "point.json"


class CurveDirError(ValueError):
    """A curve directory that cannot be used: another curve's, or a malformed file (named, with its line)."""


def point_id(model: str, examples: int) -> str:
    """`<model>-n<examples>`: a folder name that says which point it is."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', Path(model).name or model).strip('-')}-n{examples}"


class CurveDir:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def begin(self, request: dict[str, Any]) -> bool:
        """Record the request; True when resuming a curve that asked the same. Another request raises."""
        path = self.root / REQUEST
        if path.is_file():
            saved = _read_json(path)
            changed = sorted(k for k in set(saved) | set(request) if saved.get(k) != request.get(k))
            if changed:
                raise CurveDirError(f"{self.root} holds a curve made with other settings ({', '.join(changed)} "
                                    "differ); resume it with the same options, or give a new --output")
            return True
        atomic_write_text(path, json.dumps(request, indent=2) + "\n")
        return False

    def point_dir(self, pid: str) -> Path:
        return self.root / "points" / pid

    def subset_file(self, pid: str) -> Path:
        return self.point_dir(pid) / "train.jsonl"

    def run_dir(self, pid: str) -> Path:
        return self.point_dir(pid) / "run"

    def eval_dir(self, pid: str) -> Path:
        return self.point_dir(pid) / "eval"

    def write_subset(self, pid: str, records: list[dict[str, Any]]) -> Path:
        path = self.subset_file(pid)
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return path

    def read_point(self, pid: str) -> dict[str, Any]:
        """The point's state; {} when it has none yet."""
        path = self.point_dir(pid) / POINT
        return _read_json(path) if path.is_file() else {}

    def write_point(self, pid: str, state: dict[str, Any]) -> None:
        atomic_write_text(self.point_dir(pid) / POINT, json.dumps(state, indent=2) + "\n")

    def write_curve(self, curve: dict[str, Any]) -> Path:
        atomic_write_text(self.root / CURVE, json.dumps(curve, indent=2) + "\n")
        return self.root / CURVE

    def write_plot(self, png: bytes) -> Path:
        atomic_write_bytes(self.root / PLOT, png)
        return self.root / PLOT

    @property
    def plot_path(self) -> Path:
        return self.root / PLOT


def is_curve_dir(path: Path | str) -> bool:
    return (Path(path) / CURVE).is_file()


def read_curve(path: Path | str) -> dict[str, Any]:
    """curve.json of a curve directory; errors name the file."""
    file = Path(path) / CURVE
    if not file.is_file():
        raise CurveDirError(f"{path} is not a curve directory: {CURVE} is missing; make one with `tunesmith curve`")
    curve = _read_json(file)
    for key in ("points", "verdict"):
        if key not in curve:
            raise CurveDirError(f"{file}: field {key!r} is missing")
    return curve


def find_curve_dirs(roots: list[Path]) -> list[Path]:
    """Curve directories directly under each root (or the root itself), newest first."""
    found = []
    for root in roots:
        root = Path(root)
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        found += [p for p in candidates if is_curve_dir(p)]
    return sorted(set(found), key=lambda p: (p / CURVE).stat().st_mtime, reverse=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CurveDirError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise CurveDirError(f"{path}: expected a JSON object")
    return data
