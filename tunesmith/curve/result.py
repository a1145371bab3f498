"""curve.json from the finished points: the points with cost, the fit and its projection, the paired test of
the last doubling, the baselines, the other models, the verdict; and the plot beside it."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from tunesmith.artifacts.curve_dir import CurveDir
from tunesmith.artifacts.eval_dir import EvalRun, read_eval_run
from tunesmith.curve.baselines import Baseline, pair_with_point
from tunesmith.curve.checks import CurveError, CurveInputs
from tunesmith.curve.fit import CurveFit, fit_with_bootstrap
from tunesmith.curve.plan import LeftOut, Measured, PlannedPoint, estimate_seconds
from tunesmith.curve.verdict import judge
from tunesmith.hparams import default_n_epochs


def write_result(request: Any, inputs: CurveInputs, curve_dir: CurveDir, states: list[dict[str, Any]],
                 baselines: list[Baseline], left_out: list[LeftOut], wall_seconds: float, log: Any) -> dict[str, Any]:
    from tunesmith.curve.plot import render_plot

    main = sorted((s for s in states if s["model"] == request.model), key=lambda s: s["examples"])
    runs = [read_eval_run(s["eval_dir"]) for s in main]
    matrix = item_matrix(runs, inputs.metric)
    bounded = bool(((matrix >= 0) & (matrix <= 1)).all())
    fitted = fit_with_bootstrap([s["examples"] for s in main], matrix, seed=request.seed,
                                bounds=(0.0, 1.0) if bounded else None)
    verdict = judge(fitted)
    for b in baselines:
        b.paired = pair_with_point(b, runs[-1])
    curve = {
        "model": request.model, "train": str(request.train), "test": str(request.test), "metric": inputs.metric,
        "graders": [g.name for g in inputs.graders], "n_test_items": matrix.shape[1],
        "stratified_by": inputs.strata.by, "seed": request.seed,
        "points": [point_row(s, request.gpu_hour_price) for s in states],
        "baselines": [b.to_dict() for b in baselines],
        "fit": fitted.fit.to_dict(),
        "per_doubling": vars(fitted.per_doubling),
        "projection": projection_rows(fitted, main[-1], request.model, request.n_epochs),
        "last_doubling": last_doubling(runs, main, inputs.metric),
        "models": model_rows(states, request.model),
        "verdict": verdict.to_dict(),
        "left_out": [{"model": x.point.model, "fraction": x.point.fraction, "examples": x.point.examples,
                      "estimated_seconds": round(x.estimated_seconds, 1)} for x in left_out],
        "wall_seconds": round(wall_seconds, 1),  # this invocation (a resumed curve's is its own part only)
        "points_seconds": round(sum(s["train_seconds"] + s["eval_seconds"] for s in states), 1),  # all runs'
        "cpu": cpu_name(),
        "plot": curve_dir.plot_path.name,
    }
    curve_dir.write_plot(render_plot(curve))
    path = curve_dir.write_curve(curve)
    log(f"curve: {verdict.message}")
    log(f"curve: wrote {path} and {curve_dir.plot_path}")
    return curve


def item_matrix(runs: list[EvalRun], metric: str) -> np.ndarray:
    """(points × test items) scores on the metric, items paired by question across every point."""
    keys = [k for k in runs[0].items_by("question") if all(k in r.items_by("question") for r in runs)]
    if not keys:
        raise CurveError("the points' evaluations share no test item; were they run on the same test file?")
    return np.array([[float(r.items_by("question")[k]["scores"][metric]) for k in keys] for r in runs])


def point_row(state: dict[str, Any], gpu_hour_price: float | None) -> dict[str, Any]:
    epochs = int(state.get("n_epochs") or 1)
    row = {k: state.get(k) for k in ("model", "fraction", "examples", "n_epochs", "trained_tokens", "score",
                                     "ci_low", "ci_high", "train_seconds", "eval_seconds", "run_dir", "eval_dir")}
    row["tokens"] = int(state.get("trained_tokens") or 0) // epochs  # per epoch: the subset's trained tokens
    row["seconds"] = round(state["train_seconds"] + state["eval_seconds"], 2)
    row["cost"], row["cost_note"] = point_cost(state, gpu_hour_price)
    return row


def point_cost(state: dict[str, Any], gpu_hour_price: float | None) -> tuple[float | None, str]:
    """Training cost at the measured speed through assess.cost: hours × the machine's hourly price."""
    from tunesmith.assess.cost import estimate_cost_from_tokens

    epochs = int(state.get("n_epochs") or 1)
    trained = int(state.get("trained_tokens") or 0)
    if not trained or not state.get("train_seconds"):
        return None, "no trained tokens recorded"
    try:
        est = estimate_cost_from_tokens([trained // epochs], state["model"], n_epochs=epochs,
                                        throughput=trained / state["train_seconds"], gpu_hour_price=gpu_hour_price)
    except KeyError:
        return None, f"{state['model']} is not in the catalog: no price"
    training_notes = [n for n in est.notes if "gpu-hour-price" in n]  # not hosting nor inference: no usage given
    return est.training_cost, "; ".join(est.sources + training_notes)


def projection_rows(fitted: CurveFit, largest: dict[str, Any], model: str,
                    n_epochs: int | str = "auto") -> list[dict[str, Any]]:
    """2× and 4× the data: the fit's extrapolation, its interval, and the time it would take at this speed
    (with the epochs the curve's recipe would give that many examples)."""
    measured = Measured(PlannedPoint(model, 1.0, largest["examples"], int(largest.get("n_epochs") or 1)),
                        largest["train_seconds"], largest["eval_seconds"])
    rows = []
    for p in fitted.projections:
        epochs = default_n_epochs(p.examples) if n_epochs == "auto" else int(n_epochs)
        planned = PlannedPoint(model, 1.0, p.examples, epochs)
        rows.append({**vars(p), "seconds_estimate": round(estimate_seconds(planned, measured), 1)})
    return rows


def last_doubling(runs: list[EvalRun], main: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The paired test of the largest point against the one before it: items fixed and broken, p."""
    from tunesmith.evaluate.compare import compare_pair

    if len(runs) < 2:
        return None
    pair = compare_pair(runs[-2], runs[-1])
    g = next((g for g in pair.graders if g.grader == metric), None)
    if g is None:
        return {"from": main[-2]["examples"], "to": main[-1]["examples"], "problem": pair.problem}
    return {"from": main[-2]["examples"], "to": main[-1]["examples"], "delta": g.delta, "ci95": list(g.ci95),
            "p": g.p_value, "test": g.test, "fixed": len(g.fixed), "broken": len(g.broken), "verdict": g.verdict}


def model_rows(states: list[dict[str, Any]], main_model: str) -> list[dict[str, Any]]:
    """Each model's points side by side (with --models): does size or data pay more, for how long."""
    models = list(dict.fromkeys(s["model"] for s in states))
    if len(models) < 2:
        return []
    return [{"model": m, "main": m == main_model,
             "points": [{"examples": s["examples"], "score": s["score"],
                         "seconds": round(s["train_seconds"] + s["eval_seconds"], 1)}
                        for s in sorted((s for s in states if s["model"] == m), key=lambda s: s["examples"])]}
            for m in models]


def cpu_name() -> str:
    """The CPU's model name (lscpu's), for the wall time to mean something."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
