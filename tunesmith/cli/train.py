"""`tunesmith train` and `tunesmith export`: parse, call tunesmith.training, print.

`train`'s configuration flags are made from TrainConfig's fields, their help text included (as TRL's
HfArgumentParser does from its dataclasses): a new field is a new flag, and the two cannot disagree.
"""

from __future__ import annotations

import inspect
import time
import types
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import typer
from pydantic_core import PydanticUndefined
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from tunesmith.cli.app import app, console, err_console
from tunesmith.train_config import TrainConfig

PREVIEW_EXAMPLES = 2
SHORT_FLAGS = {"model": ("-m",), "output": ("-o",)}
FLAG_SPELLINGS = {"torch_compile": "--compile/--no-compile"}  # the one flag not spelled like its field


def train(
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", min=1,
                                                 help="train on N processes (GPUs) per machine, through torchrun"),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="machines taking part (each runs this command)"),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="this machine's index, 0 … nnodes-1"),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT of node 0 (--nnodes > 1)"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of the same options (flags win)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory from its checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate, show the loss mask and the plan; no training"),
    provider: Optional[str] = typer.Option(None, "--provider", help="train a provider model (gpt-35-turbo, gpt-4, "
                                           "…) in this configured provider's cloud (see `tunesmith providers`)"),
    **config_flags: Any,
) -> None:
    """Fine-tune a model on chat data (LoRA by default); every run writes a run directory."""
    from tunesmith.providers.config import ProviderError
    from tunesmith.train_config import TrainConfigError, build_config, load_config_file
    from tunesmith.training import sft
    from tunesmith.training.launch import LaunchOptions, start, where_to_train

    launch_options = (LaunchOptions(nproc_per_node or 1, nnodes, node_rank, rdzv_endpoint)
                      if nproc_per_node is not None or nnodes > 1 else None)
    given = {k: v for k, v in config_flags.items() if v is not None and v != []}  # [] is an unused list flag
    try:
        if resume is not None:
            _start(start, resume, launch_options, None)
            return
        if config is not None:
            cfg = load_config_file(config, **given)
        else:
            if "training_file" not in given:
                err_console.print("[red]error:[/red] --train FILE is required (or --config run.yaml, or --resume)")
                raise typer.Exit(2)
            cfg = build_config(given, source="command line")
        if dry_run and where_to_train(cfg, provider=provider) != "provider":
            if cfg.method == "dpo":
                from tunesmith.training import dpo
            _print_plan((dpo.plan if cfg.method == "dpo" else sft.plan)(cfg))
            return
        _start(start, cfg, launch_options, provider)
    except (TrainConfigError, ValueError, FileNotFoundError, FileExistsError, ProviderError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)


def config_options() -> list[inspect.Parameter]:
    """One Typer option per TrainConfig field, defaulting to None ("not given": the YAML file's value or the
    field's default applies, which the help shows)."""
    params = []
    for name, field in TrainConfig.model_fields.items():
        kind, metavar = _flag_type(field.annotation)
        flag = "--" + (field.alias or name).replace("_", "-")
        decl = FLAG_SPELLINGS.get(name, f"{flag}/--no-{flag[2:]}" if kind is bool else flag)
        default = field.default if field.default not in (PydanticUndefined, None) else None
        option = typer.Option(None, decl, *SHORT_FLAGS.get(name, ()), help=field.description, metavar=metavar,
                              show_default=str(default) if default is not None else False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def _flag_type(annotation: Any) -> tuple[Any, str | None]:
    """What the flag parses as, and its metavar: choices and "auto"-or-number stay text (TrainConfig
    validates them, with its own error message), shown as `lora|qlora|full` or `auto|INTEGER`."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    kinds = [a for a in members if a is not type(None)]
    if len(kinds) == 1 and kinds[0] in (bool, int, float, str, Path):
        return kinds[0], None
    if len(kinds) == 1 and get_origin(kinds[0]) is list:
        return list[str], None
    words = [str(v) for k in kinds for v in (get_args(k) if get_origin(k) is Literal else ())]
    words += [{int: "INTEGER", float: "FLOAT"}.get(k, "TEXT") for k in kinds if get_origin(k) is not Literal]
    return str, "|".join(words)


def _train_signature() -> inspect.Signature:
    """train's own options after TrainConfig's, all keyword-only: the signature Typer reads the flags from."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(train, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return inspect.Signature(config_options() + own, return_annotation=None)


train.__signature__ = _train_signature()  # type: ignore[attr-defined]
app.command("train")(train)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="a run directory (or an adapter folder)"),
    merged: Path | None = typer.Option(None, "--merged", help="folder to write the merged safetensors model to"),
    format: str | None = typer.Option(None, "--format", help="gguf (llama.cpp, Ollama) | vllm (LoRA adapter)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="folder to write the export to"),
    quantize: str = typer.Option("f16", "--quantize", help="GGUF weights: f16 | q8_0 | q4_k_m"),
    check: bool = typer.Option(True, "--check/--no-check", help="after a GGUF export, compare greedy replies of "
                               "the trained, merged and exported models"),
    prompts: Path | None = typer.Option(None, "--prompts", help="chat file whose prompts the check uses "
                                        "(default: the run's validation file)"),
    n_prompts: int = typer.Option(5, "--n-prompts", min=1, help="prompts the check uses"),
) -> None:
    """Merge a run's adapter (--merged DIR), or export it for llama.cpp/Ollama (--format gguf) or vLLM."""
    from tunesmith.export.gguf import ExportError, export_gguf
    from tunesmith.export.merged import export_merged
    from tunesmith.export.vllm import export_vllm

    try:
        if merged is not None:
            with console.status(f"merging {run_dir}…"):
                out = export_merged(run_dir, merged)
            console.print(f"merged model written to [bold]{out}[/bold]")
            return
        if format not in ("gguf", "vllm") or output is None:
            err_console.print("[red]error:[/red] give --merged DIR, or --format gguf|vllm --output DIR")
            raise typer.Exit(2)
        if format == "vllm":
            done = export_vllm(run_dir, output)
            for warning in done.warnings:
                console.print(f"[yellow]warning:[/yellow] {warning}")
            console.print(f"vLLM adapter written to [bold]{done.adapter_dir}[/bold]; serve it with:")
            console.print(done.command, soft_wrap=True, markup=False)
            return
        with console.status(f"merging {run_dir} and converting it to GGUF ({quantize})…"):
            gguf = export_gguf(run_dir, output, quantize=quantize)
        for warning in gguf.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        console.print(f"GGUF written to [bold]{gguf.gguf}[/bold]" +
                      (f"; Ollama: `ollama create NAME -f {gguf.modelfile}`" if gguf.modelfile else ""))
        if check:
            _print_parity(_run_parity(run_dir, gguf.gguf, quantize, prompts, n_prompts), output)
    except (FileExistsError, FileNotFoundError, ValueError, ExportError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)


def _run_parity(run_dir: Path, gguf: Path, quantize: str, prompts: Path | None, n: int) -> Any:
    from tunesmith.data.formats import read_conversations
    from tunesmith.export.parity import check_parity

    given = read_conversations(prompts)[:n] if prompts is not None else None
    with console.status("parity check: greedy replies of the trained, merged and exported models…"):
        return check_parity(run_dir, gguf, quantize=quantize, prompts=given, n=n)


def _print_parity(report: Any, output: Path) -> None:
    import json

    (output / "parity.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    console.rule(f"parity check (GGUF run by {report.runtime})")
    for n, p in enumerate(report.prompts, start=1):
        verdict = "[green]identical[/green]" if p.identical else (
            f"[red]differs[/red] ({p.first_difference['variant']} at token {p.first_difference['index']}: "
            f"{p.first_difference['expected']!r} -> {p.first_difference['got']!r})")
        eos = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in p.ended_with_eos.items())
        console.print(f"{n}. {p.prompt[:60]!r}: {verdict}; ended with EOS: {eos}", markup=True)
    console.print(f"agreement: {report.agreement:.0%} of {len(report.prompts)} prompts identical"
                  + (f"; mean log-prob gap {report.logprob_gap:.4f}" if report.logprob_gap is not None else ""))
    if not report.all_ended_with_eos:
        console.print("[yellow]warning:[/yellow] some replies never emitted the trained EOS within the limit")
    console.print(f"report: {output / 'parity.json'}")


def _start(start: Any, target: Any, launch_options: Any, provider: str | None) -> None:
    """training.launch.start with a live progress bar; under torchrun rank 0's events print from the workers."""
    if launch_options is not None and not _at_provider(target, provider):
        _report(start(target, launch=launch_options))
        return
    _report(_with_progress(lambda on_event: start(target, launch=launch_options, provider=provider,
                                                  on_event=on_event)))


def _at_provider(target: Any, provider: str | None) -> bool:
    from tunesmith.training.launch import where_to_train

    return where_to_train(target if not isinstance(target, (str, Path)) else Path(target),
                          provider=provider) == "provider"


def _with_progress(start: Any) -> Any:
    """Run training with a live bar: step, loss, tokens/s, ETA; other events print above it."""
    columns = (
        TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=None, loss="-", tps="-")
        window: list[tuple[float, int]] = []

        def on_event(event: dict) -> None:
            data = event.get("data") or {}
            if event["type"] != "metrics":
                style = {"warn": "yellow", "error": "red"}.get(event["level"], "dim")
                bar.console.print(Text(event["message"], style=style))
                return
            window.append((time.monotonic(), int(data.get("tokens_per_second") or 0)))
            del window[:-20]
            tps = sum(t for _, t in window) / len(window)
            bar.update(task, completed=data["step"], total=data["total_steps"],
                       loss=f"{data['train_loss']:.4f}", tps=f"{tps:,.0f}")

        return start(on_event)


def _report(result: Any) -> None:
    if result.status == "succeeded":
        console.print(f"[green]done[/green]: {result.step} steps, final loss {result.train_loss:.4f}")
        console.print(f"run directory: [bold]{result.run_dir}[/bold]  (adapter/model: "
                      f"{getattr(result, 'fine_tuned_model', None) or result.output_dir})")
    else:
        console.print(f"[yellow]{result.status}[/yellow] at step {result.step}/{result.total_steps}; "
                      f"continue with `tunesmith train --resume {result.run_dir}`")


def _print_plan(plan: Any) -> None:
    data, hp = plan.data, plan.hyperparameters
    for n, example in enumerate(data.train[:PREVIEW_EXAMPLES], start=1):
        console.rule(f"example {n}: loss mask ([green on grey23]trained[/green on grey23], [dim]not trained[/dim])")
        console.print(_mask_text(example, plan.tokenizer, marked=console.color_system is None))
    summary = data.summary()
    console.rule("plan")
    console.print(f"training examples: {len(data.train)}  (validation: {len(data.valid)})")
    console.print(f"tokens: {summary['training_file']['n_tokens']:,}, carrying loss: "
                  f"{summary['training_file']['n_trained_tokens']:,} ({summary['loss_fraction']:.1%})")
    console.print(f"max_length: {data.max_length}; truncated: {data.n_truncated}; skipped: {data.n_dropped}")
    for warning in data.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"n_epochs={hp.n_epochs} batch_size={hp.batch_size} learning_rate_multiplier="
                  f"{hp.learning_rate_multiplier} (learning rate {hp.learning_rate:.2e}); {plan.total_steps} steps")


def _mask_text(example: Any, tokenizer: Any, *, marked: bool) -> Text:
    """The example's tokens, trained ones highlighted; without colours, trained runs are wrapped in «»."""
    text = Text()
    previous = False
    for token_id, trained in zip(example.ids, example.trained):
        if marked and trained != previous:
            text.append("«" if trained else "»")
        text.append(tokenizer.decode([token_id]), style="bold green on grey23" if trained else "dim")
        previous = trained
    if marked and previous:
        text.append("»")
    return text
