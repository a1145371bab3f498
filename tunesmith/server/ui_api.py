"""Read-only endpoints the studio pages need beyond the OpenAI API, under `/ui-api`.

Everything here reads what other parts wrote: the job store's file records, run directories
(`<data dir>/runs/<job id>`), eval directories (`<data dir>/evals/**/summary.json`), and the catalog.
Nothing here writes; uploads, jobs and deletes go through the OpenAI-shaped `/v1` API like any SDK client.

The store and data directory come from the app's `ServerState` (`server.settings.server_state`); its settings'
`eval_dirs` (`tunesmith serve --evals-dir DIR`) add folders of eval runs kept elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from tunesmith.catalog import CATALOG, DEFAULT_MODEL, find_model_spec
from tunesmith.hparams import LIMITS
from tunesmith.artifacts import run_dir as runs
from tunesmith.artifacts.eval_dir import EvalDirError, find_eval_dirs, read_summary
from tunesmith.jobs.files import file_path
from tunesmith.jobs.store import JobStore
from tunesmith.server.errors import hide_server_paths
from tunesmith.server.settings import server_state

router = APIRouter(prefix="/ui-api", tags=["studio"])

MAX_SHOWN_ITEMS = 200  # fixed/broken items sent to the page per comparison and grader


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, {"error": {"message": what, "type": "invalid_request_error", "param": None,
                                         "code": "not_found"}})


def _bad_request(message: str, param: str | None = None) -> HTTPException:
    return HTTPException(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                         "code": None}})


def _store(request: Request) -> JobStore:
    return server_state(request).store


def _data_dir(request: Request) -> Path:
    return server_state(request).data_dir


def client_view(value: Any, request: Request, names: dict[str, str] | None = None) -> Any:
    """`value` (JSON-ready) with every path in its strings as a client may see it: `names` (server path -> the
    client's name for it) first, then relative to the data dir, or cut to its last part; never the server's
    absolute path. Only for what tunesmith wrote, not for the user's own texts (prompts, outputs)."""
    if isinstance(value, str):
        for path, name in (names or {}).items():
            value = value.replace(path, name)
        return hide_server_paths(value, _data_dir(request))
    if isinstance(value, list):
        return [client_view(v, request, names) for v in value]
    if isinstance(value, dict):
        return {k: client_view(v, request, names) for k, v in value.items()}
    return value


# --- Catalog ------------------------------------------------------------------------------------------------
@router.get("/catalog")
def catalog() -> dict[str, Any]:
    """Every catalog model, for the job form (local ones train here; provider ones through their API)."""
    models = [{**dataclasses.asdict(spec), "local": spec.local} for spec in CATALOG]
    return {"object": "list", "default": DEFAULT_MODEL, "data": models}


# --- Files ----------------------------------------------------------------------------------------------------
def token_histogram(stats: dict[str, Any]) -> dict[str, list[int]]:
    """The report's histogram (`[{"lo","hi","count"}]`, hi inclusive) as bin `edges` and `counts` for a chart."""
    bins = stats.get("histogram") or []
    if not bins:
        return {"edges": [], "counts": []}
    return {"edges": [int(bins[0]["lo"])] + [int(b["hi"]) + 1 for b in bins], "counts": [int(b["count"]) for b in bins]}


@functools.lru_cache(maxsize=32)
def _report_with_tokens(path: str, mtime_ns: int, model: str) -> dict[str, Any]:
    """Validation with `model`'s tokenizer (token stats, billing); cached per file version and model."""
    from tunesmith.data.validate import validate_file

    return json.loads(json.dumps(validate_file(path, model=model).to_dict(), default=str))


@router.get("/files/{file_id}/report")
def file_report(file_id: str, request: Request, model: str | None = None) -> dict[str, Any]:
    """The validation report of an uploaded file, with token statistics and a histogram of example lengths.

    The report made at upload is used when it already counted tokens and no `model` is asked for; otherwise
    the file is validated again with the model's tokenizer and context length (the default model's when none
    is named), since billing tokens differ between tokenizers.
    """
    record = _store(request).get_file(file_id)
    if record is None:
        raise _not_found(f"No such file: {file_id}")
    if model is not None and find_model_spec(model) is None:
        raise _bad_request(f"unknown model {model!r}: pick one from /ui-api/catalog", "model")
    report = record.report or {}
    if model is not None or not (report.get("stats") or {}).get("tokens"):
        path = file_path(_data_dir(request), record)
        if not path.is_file():
            raise _not_found(f"The content of {file_id} is gone from the server's data directory")
        model = model or DEFAULT_MODEL
        report = _report_with_tokens(str(path), path.stat().st_mtime_ns, model)
    stats = report.get("stats") or {}
    names = {str(file_path(_data_dir(request), record)): record.filename}  # the name the client knows it by
    return {
        "id": record.id,
        "filename": record.filename,
        "status": record.status,
        "ok": bool(report.get("ok")),
        "n_examples": report.get("n_examples", 0),
        "errors": client_view(report.get("errors", []), request, names),
        "warnings": client_view(report.get("warnings", []), request, names),
        "stats": stats,
        "tokenizer": model,
        "token_histogram": token_histogram(stats),
    }


# --- Jobs -----------------------------------------------------------------------------------------------------
def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@router.get("/jobs/{job_id}/metrics")
def job_metrics(job_id: str, request: Request) -> dict[str, Any]:
    """results.csv as rows (oldest step first) plus the run's state.json; empty until training starts."""
    if _store(request).get_job(job_id) is None:
        raise _not_found(f"No such job: {job_id}")
    run_dir = runs.run_dir_for(_data_dir(request), job_id)
    results = runs.read_results(run_dir)
    rows = [{"step": step, **{k: _finite_or_none(v) for k, v in cols.items()}} for step, cols in sorted(results.items())]
    return {"job_id": job_id, "rows": rows, "state": client_view(runs.read_state(run_dir), request)}


@router.get("/jobs/{job_id}/example-losses")
def job_example_losses(job_id: str, request: Request, top: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    """The last epoch's highest-loss training examples (example_losses.csv), each with its robust z-score
    and its user/assistant text read back from the job's training file; empty until an epoch ends."""
    from tunesmith.data.formats import DataError
    from tunesmith.training.example_loss import Z_THRESHOLD, example_texts, highest_losses, is_outlier

    job = _store(request).get_job(job_id)
    if job is None:
        raise _not_found(f"No such job: {job_id}")
    found = highest_losses(runs.run_dir_for(_data_dir(request), job_id), top)
    record = _store(request).get_file(job.training_file)
    texts: dict[int, dict[str, str]] = {}
    if found and record is not None and file_path(_data_dir(request), record).is_file():
        try:
            texts = example_texts(file_path(_data_dir(request), record), [e.line for e in found])
        except DataError:  # the file changed into something unreadable: the losses still stand alone
            texts = {}
    rows = [{"line": e.line, "mean_loss": _finite_or_none(e.mean_loss), "z": _finite_or_none(e.z),
             "trained_tokens": e.trained_tokens, "outlier": is_outlier(e),
             **texts.get(e.line, {"user": None, "assistant": None})} for e in found]
    return {"job_id": job_id, "epoch": found[0].epoch if found else None, "z_threshold": Z_THRESHOLD, "rows": rows}


# --- Evaluations ----------------------------------------------------------------------------------------------
def _eval_roots(request: Request) -> list[Path]:
    return [_data_dir(request) / "evals", *server_state(request).settings.eval_dirs]


def _read_summary(path: Path) -> dict[str, Any]:
    """A listed eval's summary; a broken one is still listed (by id), so the user sees it exists."""
    try:
        return read_summary(path)
    except EvalDirError:
        return {}


@router.get("/evals")
def list_evals(request: Request) -> dict[str, Any]:
    """Every eval run with its summary.json, newest first."""
    roots = _eval_roots(request)
    evals = [{"id": eval_id, **_read_summary(path)} for eval_id, path in find_eval_dirs(roots).items()]
    evals.sort(key=lambda e: e.get("created_at") or "", reverse=True)
    return {"object": "list", "data": client_view(evals, request), "roots": client_view([str(r) for r in roots], request)}


@router.get("/compare")
def compare_evals(request: Request, ids: str = Query(..., description="eval ids, comma-separated; the first is the baseline"),
                  pair_by: str = Query("question", description="question, id or line: how items are paired")) -> dict[str, Any]:
    """Each later eval against the first (`evaluate.compare`, paired as `tunesmith compare` pairs): per-grader delta,
    CI, p-value and verdict, how many items paired, and the items fixed and broken with every eval's output."""
    from tunesmith.artifacts.eval_dir import PAIR_BY
    from tunesmith.evaluate.compare import compare

    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if len(wanted) < 2:
        raise _bad_request("compare needs at least two different eval ids", "ids")
    if pair_by not in PAIR_BY:
        raise _bad_request(f"pair_by must be one of {', '.join(PAIR_BY)}, not {pair_by!r}", "pair_by")
    known = find_eval_dirs(_eval_roots(request))
    missing = [i for i in wanted if i not in known]
    if missing:
        raise _not_found(f"No such eval run: {', '.join(missing)}")
    try:
        result = compare([known[i] for i in wanted], pair_by=pair_by)
    except EvalDirError as e:
        raise _bad_request(str(e), "ids")
    runs_by_id = dict(zip(wanted, [result.baseline] + [t.treatment for t in result.treatments]))
    comparisons, shown = [], set()
    for cand_id, treatment in zip(wanted[1:], result.treatments):
        graders = [_grader_row(g) for g in treatment.graders]
        shown.update(k for row in graders for k in row["fixed"] + row["broken"])
        p = treatment.pairing
        comparisons.append({"baseline": wanted[0], "candidate": cand_id, "graders": graders, "pair_by": p.pair_by,
                            "paired": len(p.keys), "pairing": client_view(p.describe(), request),
                            "problem": client_view(p.problem, request),
                            "only_in_baseline": len(p.only_in_baseline), "only_in_candidate": len(p.only_in_treatment),
                            "unpaired_baseline": p.only_in_baseline[:MAX_SHOWN_ITEMS],
                            "unpaired_candidate": p.only_in_treatment[:MAX_SHOWN_ITEMS],
                            "baseline_prompt_tokens": treatment.baseline_prompt_tokens,
                            "candidate_prompt_tokens": treatment.treatment_prompt_tokens,
                            "prompt_token_saving": treatment.prompt_token_saving})
    evals = client_view([{"id": i, **run.summary} for i, run in runs_by_id.items()], request)
    return {
        "evals": evals,
        "graders": list(dict.fromkeys(g for e in evals for g in (e.get("graders") or {}))),
        "comparisons": comparisons,
        "warnings": client_view(result.problems + result.warnings, request),  # the page shows both; a run that does not pair comes first
        "items": {key: _item_outputs(key, runs_by_id, pair_by) for key in sorted(shown)},
    }


def _grader_row(g: Any) -> dict[str, Any]:
    row = {k: _finite_or_none(v) if isinstance(v, float) else v
           for k, v in dataclasses.asdict(g).items() if k != "item_deltas"}
    row["ci95"] = [_finite_or_none(x) for x in g.ci95]
    row["fixed"], row["broken"] = g.fixed[:MAX_SHOWN_ITEMS], g.broken[:MAX_SHOWN_ITEMS]
    row["n_fixed"], row["n_broken"] = len(g.fixed), len(g.broken)
    return row


def _item_outputs(key: str, runs_by_id: dict[str, Any], pair_by: str) -> dict[str, Any]:
    """One paired item's prompt and reference, and each eval's output and scores for it."""
    items = {eval_id: r.items_by(pair_by).get(key) for eval_id, r in runs_by_id.items()}
    first = next(p for p in items.values() if p is not None)
    return {
        "id": key,
        "messages": first.get("messages", []),
        "reference": first.get("reference"),
        "outputs": {eval_id: {"id": p.get("id"), "output": p.get("output"), "scores": p.get("scores", {}), "details": p.get("details", {})}
                    for eval_id, p in items.items() if p is not None},
    }


# --- Readiness and cost ---------------------------------------------------------------------------------------
def _training_path(request: Request, file_id: str) -> Path:
    record = _store(request).get_file(file_id)
    if record is None:
        raise _not_found(f"No such file: {file_id}")
    if record.purpose != "fine-tune":  # a results.csv or a batch file is not training data
        raise _bad_request(f"file {file_id} has purpose '{record.purpose}', not 'fine-tune'", "file_id")
    return file_path(_data_dir(request), record)


def _plain(value: Any) -> Any:
    """A dataclass (or anything with to_dict) as JSON-ready data."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


# Bounds for the cost form's numbers: finite, not negative, and below what any real use reaches, so a typo
# (or nan) is a 400 naming the field instead of a nonsense estimate.
MAX_HOUR_PRICE = 10_000.0
MAX_REQUESTS_PER_DAY = 1e9
MAX_TOKENS = 10_000_000.0


def _amount(default: float | None, most: float, description: str) -> Any:
    return Query(default, ge=0, le=most, allow_inf_nan=False, description=f"{description} (0-{most:,.0f})")


@router.get("/cost")
def cost(
    request: Request,
    file_id: str,
    model: str = DEFAULT_MODEL,
    n_epochs: int | None = Query(None, ge=LIMITS["n_epochs"][0], le=LIMITS["n_epochs"][1]),
    gpu_hour_price: float | None = _amount(None, MAX_HOUR_PRICE, "US$ per hour of the training machine"),
    requests_per_day: float | None = _amount(None, MAX_REQUESTS_PER_DAY, "requests per day"),
    prompt_tokens_before: float | None = _amount(None, MAX_TOKENS, "prompt tokens per request today"),
    prompt_tokens_after: float | None = _amount(None, MAX_TOKENS, "prompt tokens per request fine-tuned"),
    completion_tokens: float = _amount(0.0, MAX_TOKENS, "output tokens per request"),
) -> dict[str, Any]:
    """What `tunesmith cost` reports for an uploaded training file."""
    from tunesmith.assess.cost import UsageAssumptions, estimate_cost

    if find_model_spec(model) is None:
        raise _bad_request(f"unknown model {model!r}: pick one from /ui-api/catalog", "model")
    usage = UsageAssumptions(requests_per_day=requests_per_day, prompt_tokens_before=prompt_tokens_before,
                             prompt_tokens_after=prompt_tokens_after, completion_tokens=completion_tokens)
    try:
        estimate = estimate_cost(_training_path(request, file_id), model, n_epochs=n_epochs,
                                 gpu_hour_price=gpu_hour_price, usage=usage)
    except ValueError as e:
        raise _bad_request(str(e), "file_id") from e
    return client_view(_plain(estimate), request)


@router.get("/assess")
def assess(
    request: Request,
    use_case: str = "",
    file_id: str | None = None,
    validation_file_id: str | None = None,
    baselines: str = Query("", description="eval ids of baselines, comma-separated"),
    model: str = DEFAULT_MODEL,
    metric: str | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """What `tunesmith assess` reports, from files uploaded here and eval runs listed by /ui-api/evals."""
    from tunesmith.assess.readiness import assess as assess_readiness
    from tunesmith.data.formats import DataError

    if find_model_spec(model) is None:
        raise _bad_request(f"unknown model {model!r}: pick one from /ui-api/catalog", "model")
    known = find_eval_dirs(_eval_roots(request))
    wanted = [i for i in baselines.split(",") if i]
    missing = [i for i in wanted if i not in known]
    if missing:
        raise _not_found(f"No such eval run: {', '.join(missing)}")
    try:
        result = assess_readiness(
            use_case=use_case,
            train=_training_path(request, file_id) if file_id else None,
            validation=_training_path(request, validation_file_id) if validation_file_id else None,
            baselines=[known[i] for i in wanted], model=model, metric=metric, target=target)
    except (EvalDirError, DataError, KeyError, ValueError) as e:
        raise _bad_request(str(e)) from e
    return client_view(_plain(result), request)
