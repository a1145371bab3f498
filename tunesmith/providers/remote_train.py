"""Fine-tune a provider model (gpt-35-turbo, gpt-4, babbage-002, davinci-002) in its provider's cloud, following
the remote job into a local run directory that the UI, `compare` and `cost` read like any other.

    result = train_remote(TrainConfig(model="gpt-35-turbo-0125", train="data.jsonl"), "azure-east")
    result = resume_remote(result.run_dir)        # after a crash or Ctrl-C: same job, never a second one

Steps: validate locally (cl100k_base against the model's token limit), upload, create the job, then poll
status and events until the job ends; download results.csv; record the fine-tuned model id.

Idempotency: the run directory's `remote.json` records every id the moment the provider returns it; the job is
created with metadata `tunesmith_run=<run key>` (and an `Idempotency-Key` header) and without SDK retries, so
after a lost response the next attempt first looks the job up by that key instead of creating another.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import openai

from tunesmith.catalog import ModelSpec, closed_status_line, find_model_spec, get_model_spec
from tunesmith.paths import atomic_write_bytes, atomic_write_text
from tunesmith.providers.client import call_with_retries, is_azure, make_client
from tunesmith.providers.config import ProviderConfig, ProviderError, get_provider
from tunesmith.providers.preflight import describe_report, provider_upload, validate_for_provider
from tunesmith.train_config import TrainConfig
from tunesmith.artifacts.run_dir import (
    RESULTS_COLUMNS,
    EventSink,
    RunFiles,
    RunResult,
    StopSignal,
    new_run_dir,
    plot_metrics,
    read_events,
    read_json,
    results_rows,
    saved_config,
    write_json,
)

REMOTE_FILE = "remote.json"
RUN_KEY_METADATA = "tunesmith_run"
TERMINAL = ("succeeded", "failed", "cancelled")
# Provider statuses → run directory statuses (Azure says "pending" where OpenAI says "queued").
_LOCAL_STATUS = {"validating_files": "queued", "pending": "queued", "queued": "queued", "running": "running",
                 "paused": "paused", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}
# Column names some providers use for ours (OpenAI's guide; Azure's "validation_" spelling).
_COLUMN_ALIASES = {"train_accuracy": "train_mean_token_accuracy",
                   "validation_mean_token_accuracy": "valid_mean_token_accuracy",
                   "valid_accuracy": "valid_mean_token_accuracy"}



@dataclass
class RemoteState:
    """remote.json: what the provider knows this run by."""

    provider: str
    kind: str
    endpoint: str
    run_key: str
    training_file_id: str | None = None
    validation_file_id: str | None = None
    job_id: str | None = None
    fine_tuned_model: str | None = None
    provider_status: str | None = None

    def save(self, run: RunFiles) -> None:
        write_json(run.root / REMOTE_FILE, asdict(self))

    @classmethod
    def load(cls, run: RunFiles) -> "RemoteState":
        return cls(**read_json(run.root / REMOTE_FILE))


@dataclass
class RemoteRunResult(RunResult):
    """A local run's result plus the provider's ids; output_dir stays None: the weights stay with the provider."""

    job_id: str | None = None
    fine_tuned_model: str | None = None


@dataclass
class FollowOptions:
    # Polls start quick and slow down while nothing happens (a queued job can wait for hours), back to quick
    # as soon as new events arrive.
    poll_interval_s: float = 10.0
    min_poll_interval_s: float = 1.0
    patience_s: float = 900.0  # how long the provider may be unreachable before we give up following


def is_remote_run(run_dir: Path | str) -> bool:
    return (Path(run_dir) / REMOTE_FILE).is_file()


def trains_at_provider(model: str) -> bool:
    """True for catalog models without open weights (and fine-tuned models made from them)."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model
    spec = find_model_spec(base)
    return spec is not None and not spec.local


def provider_model_spec(model: str) -> ModelSpec:
    """The catalog entry a provider trains `model` from (an `ft:<base>:…` model continues its base)."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model
    spec = get_model_spec(base)
    if spec.local:
        raise ProviderError(f"{spec.id} has open weights and trains on this machine; drop --provider")
    return spec


# --- entry points --------------------------------------------------------------------------------------------


def train_remote(config: TrainConfig, provider: ProviderConfig | str | None = None, *,
                 should_stop: StopSignal | None = None, on_event: EventSink | None = None,
                 client: openai.OpenAI | None = None, options: FollowOptions | None = None) -> RemoteRunResult:
    """Validate, upload, create the provider's job and follow it to the end in a new run directory.
    `provider` defaults to the config's `provider` field, where TrainConfig has one."""
    spec = provider_model_spec(config.model)
    closed = closed_status_line(spec)  # before any provider call: a job on a closed model would only fail there
    if closed:
        raise ProviderError(closed)
    if spec.status is not None and "SFT" not in spec.status.methods:
        raise ProviderError(f"{spec.id} fine-tunes only by {spec.status.methods} ({spec.status.source}); tunesmith "
                            "sends supervised jobs: pick a model that takes SFT, e.g. gpt-4.1-mini")
    provider = provider or getattr(config, "provider", None)
    if provider is None:
        raise ProviderError(f"{config.model} trains at its provider: pass --provider NAME (see `tunesmith providers`)")
    provider = get_provider(provider) if isinstance(provider, str) else provider
    report = validate_for_provider(config.training_file, spec, config.validation_file)
    if not report.ok:
        raise ProviderError(f"{config.training_file}: not sent to {provider.name}; fix these first "
                            f"(counted with cl100k_base against {spec.id}'s {spec.context_length:,}-token limit):\n"
                            + describe_report(report))
    run = RunFiles(Path(config.output) if config.output else new_run_dir(config.suffix))
    if (run.root / "state.json").is_file():
        raise FileExistsError(f"{run.root} already holds a run; continue it with `tunesmith train --resume {run.root}`")
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.root / "config.json", {**config.to_json_dict(), "provider": provider.name, "trains": "provider",
                                          "base_model": spec.id})
    write_json(run.root / "data.json", {"n_examples": report.n_examples, "stats": report.stats,
                                        "token_counting": "cl100k_base (OpenAI cookbook per-message overhead)"})
    run_key = f"{run.root.name}-{secrets.token_hex(4)}"  # unique even when two machines pick the same run name
    remote = RemoteState(provider.name, provider.kind, provider.endpoint, run_key=run_key)
    remote.save(run)
    run.write_state("queued", step=0, total_steps=None, epoch=0, trained_tokens=0, provider=provider.name)
    _emit(run, on_event, f"Validated {report.n_examples} examples locally for {spec.id}")
    return _follow(run, config, remote, client or make_client(provider), should_stop, on_event,
                   options or FollowOptions())


def resume_remote(run_dir: Path | str, *, should_stop: StopSignal | None = None, on_event: EventSink | None = None,
                  client: openai.OpenAI | None = None, options: FollowOptions | None = None) -> RemoteRunResult:
    """Follow a remote run again: reuses its uploaded files and its job (a paused job is resumed)."""
    run = _remote_run(run_dir)
    remote = RemoteState.load(run)
    if run.read_state().get("status") == "succeeded":
        raise ValueError(f"{run.root} already finished: {remote.fine_tuned_model}")
    config = saved_config(run.root)
    client = client or make_client(remote.provider)
    if remote.job_id:
        job = call_with_retries(lambda: client.fine_tuning.jobs.retrieve(remote.job_id), what="retrieve job")
        if job.status == "paused":
            call_with_retries(lambda: client.fine_tuning.jobs.resume(remote.job_id), what="resume job")
            _emit(run, on_event, f"Resumed provider job {remote.job_id}")
    _emit(run, on_event, "Following the provider job again" if remote.job_id else "Continuing the upload")
    return _follow(run, config, remote, client, should_stop, on_event, options or FollowOptions())


def cancel_remote(run_dir: Path | str, *, client: openai.OpenAI | None = None) -> str:
    """Ask the provider to cancel the run's job; returns the job's status after the request."""
    run = _remote_run(run_dir)
    remote = RemoteState.load(run)
    if not remote.job_id:
        raise ProviderError(f"{run.root}: no provider job was created yet; nothing to cancel")
    client = client or make_client(remote.provider)
    try:
        job = call_with_retries(lambda: client.fine_tuning.jobs.cancel(remote.job_id), what="cancel job")
    except openai.BadRequestError as e:  # e.g. it already finished
        raise ProviderError(f"{remote.provider} did not cancel job {remote.job_id}: {e.message}") from e
    return job.status


# --- following the job ----------------------------------------------------------------------------------------


def _follow(run: RunFiles, config: TrainConfig, remote: RemoteState, client: openai.OpenAI,
            should_stop: StopSignal | None, on_event: EventSink | None, options: FollowOptions) -> RemoteRunResult:
    def retrying(fn: Callable[[], Any], what: str) -> Any:
        return call_with_retries(fn, what=what, patience_s=options.patience_s,
                                 on_retry=lambda e, delay: _emit(run, on_event, f"{what}: {e.__class__.__name__}; "
                                                                 f"trying again in {delay:.1f}s", level="warn"))

    try:
        _ensure_uploaded(run, config, remote, client, retrying, on_event)
        _ensure_job(run, config, remote, client, retrying, on_event)
        return _poll_job(run, remote, client, retrying, should_stop, on_event, options)
    except BaseException as e:
        # Stop watching, not training: once a job exists it (and its bill) goes on at the provider, so the run
        # stays `running` and can be followed again. Written without `on_event`, which may be what failed.
        reason = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        if remote.job_id:
            run.append_event(f"Stopped following ({reason}); job {remote.job_id} goes on at {remote.provider}. "
                             f"Follow again with `tunesmith train --resume {run.root}`, cancel with "
                             f"`tunesmith providers cancel {run.root}`", level="warn")
        else:
            run.write_state("cancelled" if isinstance(e, KeyboardInterrupt) else "failed", error=reason)
            run.append_event(f"No provider job was created: {reason}", level="error")
        raise


def _poll_job(run: RunFiles, remote: RemoteState, client: openai.OpenAI, retrying: Callable,
              should_stop: StopSignal | None, on_event: EventSink | None, options: FollowOptions) -> RemoteRunResult:
    seen = {e.get("id") for e in read_events(run.root)}
    progress: dict[str, Any] = {"step": run.read_state().get("step") or 0,
                                "total_steps": run.read_state().get("total_steps"), "train_loss": None,
                                "epoch": run.read_state().get("epoch") or 0}
    stop_sent = None
    interval = min(options.min_poll_interval_s, options.poll_interval_s)
    while True:
        job = retrying(lambda: client.fine_tuning.jobs.retrieve(remote.job_id), "retrieve job")
        events = retrying(lambda: _new_events(client, remote.job_id, seen), "list job events")
        for event in events:
            _record_event(run, event, progress, on_event)
            seen.add(event["id"])
        interval = (min(options.min_poll_interval_s, options.poll_interval_s) if events
                    else min(options.poll_interval_s, interval * 1.5))
        status = _LOCAL_STATUS.get(job.status, "running")
        remote.provider_status = job.status
        remote.save(run)
        run.write_state(status, step=progress["step"], total_steps=progress["total_steps"], epoch=progress["epoch"],
                        trained_tokens=job.trained_tokens or 0, provider_status=job.status, job_id=job.id)
        if job.status in TERMINAL or (job.status == "paused" and stop_sent == "pause"):
            return _finish(run, remote, job, client, retrying, progress, on_event)
        stop = should_stop() if should_stop is not None else None
        if stop and stop_sent is None:
            stop_sent = "pause" if stop == "pause" else "cancel"
            _request_stop(client, remote.job_id, stop_sent, retrying)
            _emit(run, on_event, f"Asked {remote.provider} to {stop_sent} job {remote.job_id}")
        time.sleep(interval)


def _ensure_uploaded(run: RunFiles, config: TrainConfig, remote: RemoteState, client: openai.OpenAI,
                     retrying: Callable, on_event: EventSink | None) -> None:
    for attr, path in (("training_file_id", config.training_file), ("validation_file_id", config.validation_file)):
        if path is None or getattr(remote, attr):
            continue
        name, data = provider_upload(path, provider_model_spec(config.model))
        uploaded = retrying(lambda: client.files.create(file=(name, data), purpose="fine-tune"), f"upload {name}")
        setattr(remote, attr, uploaded.id)
        remote.save(run)  # recorded at once: a resumed run never uploads it again
        _emit(run, on_event, f"Uploaded {path} as {uploaded.id}", data={"file_id": uploaded.id})
        _wait_processed(client, uploaded, retrying)


def _wait_processed(client: openai.OpenAI, uploaded: Any, retrying: Callable, timeout_s: float = 1800) -> None:
    """Providers refuse a job on a file still being processed; wait, and stop on a file the provider rejected."""
    deadline = time.monotonic() + timeout_s
    file = uploaded
    while file.status not in ("processed", "error") and time.monotonic() < deadline:
        time.sleep(2)
        file = retrying(lambda: client.files.retrieve(uploaded.id), "retrieve file")
    if file.status == "error":
        raise ProviderError(f"the provider rejected {file.filename} ({file.id}): {file.status_details}")


def _ensure_job(run: RunFiles, config: TrainConfig, remote: RemoteState, client: openai.OpenAI,
                retrying: Callable, on_event: EventSink | None) -> None:
    if remote.job_id:
        return

    def find_or_create() -> Any:
        # A create whose answer was lost may still have made the job: look it up by this run's key first.
        return _find_job(client, remote) or _create_job(client, config, remote)

    job = retrying(find_or_create, "create fine-tuning job")
    remote.job_id = job.id
    remote.save(run)  # before any polling: a crash from here on resumes this job
    _emit(run, on_event, f"Created provider job {job.id} on {remote.provider}", data={"job_id": job.id})


def _create_job(client: openai.OpenAI, config: TrainConfig, remote: RemoteState) -> Any:
    """One create request, no SDK retries (a retry after a lost answer would make a second job)."""
    jobs = client.with_options(max_retries=0).fine_tuning.jobs
    request = _job_request(config, remote, client)
    try:
        return jobs.create(**request, metadata={RUN_KEY_METADATA: remote.run_key},
                           extra_headers={"Idempotency-Key": remote.run_key})
    except openai.BadRequestError as e:
        if "metadata" not in str(e.message):
            raise
        # Older Azure API versions reject `metadata`; the training file id (this run's own upload) still
        # identifies the job when looking it up after a lost answer.
        return jobs.create(**request, extra_headers={"Idempotency-Key": remote.run_key})


def _find_job(client: openai.OpenAI, remote: RemoteState) -> Any | None:
    """The job this run created, if any: tagged with its run key, or training on the file only it uploaded.
    OpenAI filters by metadata; Azure lists the newest jobs, among which a just-created one is."""
    query = {} if is_azure(client) else {"metadata": {RUN_KEY_METADATA: remote.run_key}}
    for job in client.fine_tuning.jobs.list(limit=50, **query).data:
        if (job.metadata or {}).get(RUN_KEY_METADATA) == remote.run_key or job.training_file == remote.training_file_id:
            return job
    return None


def _job_request(config: TrainConfig, remote: RemoteState, client: openai.OpenAI) -> dict[str, Any]:
    hp = {k: getattr(config, k) for k in ("n_epochs", "batch_size", "learning_rate_multiplier")
          if getattr(config, k) != "auto"}
    request: dict[str, Any] = {"model": config.model, "training_file": remote.training_file_id, "seed": config.seed}
    if remote.validation_file_id:
        request["validation_file"] = remote.validation_file_id
    if config.suffix:
        request["suffix"] = config.suffix
    if hp:
        # Azure's API versions predate `method`; every provider still accepts the top-level field.
        if is_azure(client):
            request["hyperparameters"] = hp
        else:
            request["method"] = {"type": "supervised", "supervised": {"hyperparameters": hp}}
    return request


def _new_events(client: openai.OpenAI, job_id: str, seen: set) -> list[dict[str, Any]]:
    """Events not yet recorded, oldest first. The provider lists newest first: stop at the first one seen."""
    fresh = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=100):
        if event.id in seen:
            break
        fresh.append(event.to_dict())
    return fresh[::-1]


def _record_event(run: RunFiles, event: dict[str, Any], progress: dict[str, Any],
                  on_event: EventSink | None) -> None:
    """Append the provider's event as is (its id dedupes on resume); a metrics event also adds a results row."""
    event = {"object": "fine_tuning.job.event", "level": "info", "data": {}, "type": "message", **event}
    event["data"] = data = event.get("data") or {}
    if event.get("type") == "metrics" and isinstance(data, dict) and "step" in data:
        run.append_result({k: data.get(k) for k in RESULTS_COLUMNS})
        progress["step"] = int(data["step"])
        progress["total_steps"] = data.get("total_steps") or progress["total_steps"]
        progress["train_loss"] = data.get("train_loss", progress["train_loss"])
        progress["epoch"] = data.get("epoch", progress["epoch"])
        data.setdefault("total_steps", progress["total_steps"])  # progress bars need it; not every provider sends it
    with open(run.root / "events.jsonl", "a") as f:
        f.write(json.dumps(event) + "\n")
    if on_event is not None:
        on_event(event)


def _request_stop(client: openai.OpenAI, job_id: str, action: str, retrying: Callable) -> None:
    jobs = client.fine_tuning.jobs
    try:
        retrying(lambda: jobs.pause(job_id) if action == "pause" else jobs.cancel(job_id), f"{action} job")
    except openai.BadRequestError:
        pass  # it finished meanwhile; the next poll records how


def _finish(run: RunFiles, remote: RemoteState, job: Any, client: openai.OpenAI, retrying: Callable,
            progress: dict[str, Any], on_event: EventSink | None) -> RemoteRunResult:
    status = _LOCAL_STATUS[job.status]
    error = None
    if job.status == "succeeded":
        for file_id in (job.result_files or [])[:1]:
            raw = retrying(lambda: client.files.content(file_id).read(), "download results")
            atomic_write_bytes(run.root / "results.provider.csv", raw)
            atomic_write_text(run.root / "results.csv", normalize_results_csv(decode_results_file(raw)))
        remote.fine_tuned_model = job.fine_tuned_model
        _emit(run, on_event, f"Fine-tuned model: {job.fine_tuned_model}",
              data={"fine_tuned_model": job.fine_tuned_model})
        if is_azure(client):
            _emit(run, on_event, "On Azure the model answers only once deployed: see docs/providers.md "
                  "(Azure deployment); then evaluate with --model <deployment name>", level="warn")
    elif job.status == "failed":
        code, message = getattr(job.error, "code", None), getattr(job.error, "message", None)
        error = f"{code or 'failed'}: {message or 'the provider gave no reason'}"
    remote.provider_status = job.status
    remote.save(run)
    rows = results_rows(run.root)
    step = int(rows[-1]["step"]) if rows else progress["step"]
    run.write_state(status, step=step, total_steps=progress["total_steps"] or step, epoch=progress["epoch"],
                    trained_tokens=job.trained_tokens or 0, error=error, fine_tuned_model=job.fine_tuned_model)
    if rows:
        try:
            plot_metrics(run)
        except Exception:  # a chart is a nicety; the run's record is complete without it
            pass
    return RemoteRunResult(run.root, status, step, progress["total_steps"] or step, progress["epoch"],
                           job.trained_tokens or 0,
                           progress["train_loss"], None, error, job.id, job.fine_tuned_model)


# --- results.csv ---------------------------------------------------------------------------------------------


def decode_results_file(raw: bytes) -> str:
    """The CSV text of a provider's results file: OpenAI serves it base64-encoded, Azure as plain CSV."""
    text = raw.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("step"):
        return text
    try:
        decoded = base64.b64decode(raw.strip(), validate=True).decode("utf-8-sig")
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if decoded.lstrip().startswith("step"):
        return decoded
    raise ProviderError(f"the provider's results file is neither CSV nor base64-encoded CSV: {text[:60]!r}")


def normalize_results_csv(text: str) -> str:
    """The provider's rows under our column names (RESULTS_COLUMNS), in our column order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RESULTS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv.DictReader(io.StringIO(text)):
        row = {_COLUMN_ALIASES.get(k.strip(), k.strip()): (v or "").strip() for k, v in row.items() if k}
        writer.writerow({k: row.get(k, "") for k in RESULTS_COLUMNS})
    return out.getvalue()


# --- small pieces --------------------------------------------------------------------------------------------


def _emit(run: RunFiles, on_event: EventSink | None, message: str, **kw: Any) -> None:
    event = run.append_event(message, **kw)
    if on_event is not None:
        on_event(event)


def _remote_run(run_dir: Path | str) -> RunFiles:
    run = RunFiles(Path(run_dir))
    if not is_remote_run(run.root):
        raise ProviderError(f"{run.root} is not a provider run (no {REMOTE_FILE})")
    return run


