"""A learning curve, point by point: train on a nested subset through the one trainer (`training.launch.start`,
epochs "auto" per subset size), evaluate on the same test items with the same graders through the one eval
(`evaluate.run.evaluate`), then fit, judge, plot and write curve.json.

Each point's state lives in the curve directory (`artifacts.curve_dir`): a finished point is never trained
again, a point killed during training resumes from its run directory's last checkpoint, one killed during its
evaluation is evaluated again. Progress goes to `log` one line at a time, so it reads in a log file too.
"""

from __future__ import annotations

import shutil
import time
from typing import Any, Callable

from tunesmith.artifacts.curve_dir import CurveDir
from tunesmith.artifacts.run_dir import read_config
from tunesmith.curve.checks import CurveError, CurveInputs, check_inputs
from tunesmith.curve.plan import LeftOut, Measured, PlannedPoint, fit_budget, plan_points
from tunesmith.curve.subsets import nested_subsets

Log = Callable[[str], None]
TRAIN_LOG_EVERY = 0.1  # a training progress line every tenth of the steps
EVAL_LOG_EVERY = 10  # and an evaluation line every 10 items


def run_curve(request: Any, *, log: Log = print) -> dict[str, Any]:
    """Run (or resume) the curve `request` (a CurveRequest) asks for; returns what curve.json holds."""
    from tunesmith.curve.baselines import read_baselines
    from tunesmith.curve.result import write_result

    started = time.perf_counter()
    inputs = check_inputs(request)
    baselines = read_baselines(request.baselines, request.test, inputs.metric)
    curve_dir = CurveDir(request.output)
    resumed = curve_dir.begin(request.identity())
    points = plan_points(request.model, list(request.models), sorted(request.fractions), inputs.sizes,
                         request.n_epochs)
    subsets = nested_subsets(inputs.strata.labels, inputs.sizes, request.seed)
    log(f"curve: {len(points)} points on {len(inputs.train)} training examples (stratified by "
        f"{inputs.strata.by}, seed {request.seed}), {inputs.n_test} test items, metric {inputs.metric}"
        + ("; resuming: finished points are kept" if resumed else ""))
    states: list[dict[str, Any]] = []
    left_out: list[LeftOut] = []
    k = 0
    while k < len(points):
        label = f"point {k + 1}/{len(points)} ({points[k].model}, {points[k].examples} examples)"
        states.append(run_point(points[k], subsets[points[k].examples], inputs, request, curve_dir, log, label))
        if k == 0 and request.budget_minutes is not None:
            first = Measured(points[0], states[0]["train_seconds"], states[0]["eval_seconds"])
            points, left_out = fit_budget(points, first, request.budget_minutes)
            for skipped in left_out:
                log(f"curve: --budget-minutes {request.budget_minutes:g} leaves out {skipped.describe()}")
        k += 1
    return write_result(request, inputs, curve_dir, states, baselines, left_out,
                        time.perf_counter() - started, log)


def run_point(point: PlannedPoint, indices: list[int], inputs: CurveInputs, request: Any, curve_dir: CurveDir,
              log: Log, label: str) -> dict[str, Any]:
    """Train and evaluate one point, or return its state when it is already done."""
    state = curve_dir.read_point(point.id)
    if state.get("status") == "done":
        log(f"{label}: done before ({_score_text(state)}); not repeated")
        return state
    if not state:
        curve_dir.write_subset(point.id, [inputs.train[i][1].to_openai() for i in indices])
        state = {"id": point.id, "model": point.model, "fraction": point.fraction, "examples": point.examples,
                 "lines": [inputs.train[i][0] for i in indices], "status": "training"}
        curve_dir.write_point(point.id, state)
    if state["status"] == "training":
        log(f"{label}: training")
        state.update(train_point(point, request, curve_dir, log, label), status="trained")
        curve_dir.write_point(point.id, state)
    log(f"{label}: evaluating on {inputs.n_test} test items")
    state.update(eval_point(point, inputs, request, curve_dir, log, label), status="done")
    curve_dir.write_point(point.id, state)
    log(f"{label}: {_score_text(state)} in {state['train_seconds'] + state['eval_seconds']:.0f} s")
    return state


def train_point(point: PlannedPoint, request: Any, curve_dir: CurveDir, log: Log, label: str) -> dict[str, Any]:
    """Train the point's subset; a run directory left by a killed curve is resumed, not restarted."""
    from tunesmith.train_config import build_config
    from tunesmith.training.launch import start

    run_dir = curve_dir.run_dir(point.id)
    started = time.perf_counter()
    on_event = _training_log(log, label)
    if (run_dir / "state.json").is_file() and (run_dir / "config.json").is_file():
        log(f"{label}: resuming its run directory {run_dir}")
        result = start(run_dir, on_event=on_event)
    else:
        if run_dir.exists():  # killed before the trainer wrote its state: nothing to resume
            shutil.rmtree(run_dir)
        options = {**request.recipe, "model": point.model, "training_file": curve_dir.subset_file(point.id),
                   "validation_file": request.validation, "n_epochs": request.n_epochs, "seed": request.seed,
                   "output": run_dir}
        result = start(build_config(options, source=f"curve point {point.id}"), on_event=on_event)
    if result.status != "succeeded":
        raise CurveError(f"{label}: training {result.status}" + (f": {result.error}" if result.error else "")
                         + f"; run the same command again to resume it ({run_dir})")
    return {"train_seconds": round(time.perf_counter() - started, 2), "run_dir": str(run_dir),
            "n_epochs": read_config(run_dir).get("n_epochs", point.n_epochs), "trained_tokens": result.trained_tokens}


def eval_point(point: PlannedPoint, inputs: CurveInputs, request: Any, curve_dir: CurveDir, log: Log,
               label: str) -> dict[str, Any]:
    from tunesmith.evaluate.run import evaluate

    started = time.perf_counter()
    result = evaluate(str(curve_dir.run_dir(point.id)), request.test, inputs.graders,
                      output_dir=curve_dir.eval_dir(point.id), limit=request.limit,
                      batch_size=request.eval_batch_size, max_new_tokens=request.max_new_tokens,
                      on_progress=_eval_log(log, label))
    stats = result.summary["graders"][inputs.metric]
    return {"eval_seconds": round(time.perf_counter() - started, 2), "eval_dir": str(result.output_dir),
            "score": stats["mean"], "ci_low": stats["ci95"][0], "ci_high": stats["ci95"][1]}


def _training_log(log: Log, label: str) -> Callable[[dict], None]:
    """Training events as log lines: warnings and errors, and the step and loss every tenth of the run."""
    last = [0]

    def on_event(event: dict) -> None:
        data = event.get("data") or {}
        if event.get("type") != "metrics":
            if event.get("level") in ("warn", "error"):
                log(f"{label}: {event['level']}: {event['message']}")
            return
        step, total = int(data.get("step", 0)), int(data.get("total_steps") or 0)
        if total and (step - last[0] >= max(1, TRAIN_LOG_EVERY * total) or step == total):
            last[0] = step
            log(f"{label}: step {step}/{total}, loss {data.get('train_loss', float('nan')):.4f}")

    return on_event


def _eval_log(log: Log, label: str, every: int = EVAL_LOG_EVERY) -> Callable[[int, int], None]:
    """Generation progress as a log line every `every` items, with the rate (through `log`: with --json it goes
    to stderr, so stdout stays the one JSON object)."""
    started, last = time.perf_counter(), [0]

    def report(done: int, total: int) -> None:
        if done - last[0] < every and done < total or done == last[0]:
            return
        last[0] = done
        rate = done / max(time.perf_counter() - started, 1e-9)
        log(f"{label}: eval {done}/{total} items, {rate:.2f} items/s")

    return report


def _score_text(state: dict[str, Any]) -> str:
    return f"score {state['score']:.3f} [{state['ci_low']:.3f}, {state['ci_high']:.3f}]"
