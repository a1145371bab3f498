"""`tunesmith data validate | stats | convert | split | dedupe`: thin wrappers over `tunesmith.data`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tunesmith.catalog import DEFAULT_MODEL
from tunesmith.cli.app import app, console, err_console

data_app = typer.Typer(help="Prepare fine-tuning data: validate, measure, convert, split, dedupe.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

FORMAT_HELP = "input format: auto, chat, prompt-completion, alpaca, sharegpt, csv"
COLUMNS_HELP = "CSV column mapping, e.g. prompt=question,completion=answer,system=sys"


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _column_map(columns: str | None) -> dict[str, str] | None:
    from tunesmith.data.formats import parse_column_map

    try:
        return parse_column_map(columns)
    except ValueError as e:
        raise _fail(str(e))


def _require_file(path: Path) -> None:
    from tunesmith.data.formats import DataError, require_readable_file

    try:
        require_readable_file(path)
    except DataError as e:
        raise _fail(str(e))


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="training data file (JSONL, JSON array or CSV)"),
    model: str | None = typer.Option(None, "--model", "-m", help="count tokens with this model's tokenizer and "
                                     "chat template, and check its context limit"),
    validation: Path | None = typer.Option(None, "--validation", help="validation file: checked too, and for "
                                           "overlap with the training file"),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    max_issues: int = typer.Option(1000, "--max-issues", help="list at most this many issues per code"),
) -> None:
    """Report every problem with line, message index, field and code. Exit 1 when there are errors."""
    from tunesmith.data.formats import DataError
    from tunesmith.data.validate import validate_file
    from tunesmith.models import ModelLoadError

    _require_file(file)
    if validation is not None:
        _require_file(validation)
    try:
        with console.status(f"validating {file}…", spinner="dots") if not as_json else _nothing():
            report = validate_file(file, model=model, validation=validation, fmt=fmt, column_map=_column_map(columns),
                                   max_issues_per_code=max_issues)
    except (DataError, ValueError, ModelLoadError) as e:
        raise _fail(str(e))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report, model)
    raise typer.Exit(0 if report.ok else 1)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _print_report(report: Any, model: str | None) -> None:
    console.print(f"[bold]{report.path}[/bold]: {report.format} format, {report.n_examples:,} valid examples")
    for title, issues, style in (("errors", report.errors, "red"), ("warnings", report.warnings, "yellow")):
        if issues:
            console.print(_issue_table(title, issues, style, report.counts))
    _print_stats(report.stats, model)
    listed = len(report.errors) + len(report.warnings)
    if sum(report.counts.values()) > listed:
        console.print("more issues than listed (see --max-issues); counts: "
                      + ", ".join(f"{code} {n:,}" for code, n in report.counts.items()))
    n_errors = sum(n for code, n in report.counts.items() if code in {i.code for i in report.errors})
    if report.ok:
        console.print(f"[green]✓ no errors[/green], {len(report.warnings):,} warning(s)")
    else:
        console.print(f"[red]✗ {n_errors:,} error(s)[/red], {len(report.warnings):,} warning(s)")


# Rows shown per code before the rest of that code becomes one summary row (--json lists every issue).
_ROWS_PER_CODE = {"errors": 5, "warnings": 2}


def _issue_table(title: str, issues: list[Any], style: str, counts: dict[str, int]) -> Table:
    table = Table(title=f"{len(issues):,} {title}", title_style=style, show_lines=False)
    with_file = any(i.file for i in issues)
    for column in ("file", "line", "msg", "field", "code", "message"):
        if column != "file" or with_file:
            table.add_column(column, overflow="fold", no_wrap=column in ("msg", "code"))
    keep = _ROWS_PER_CODE.get(title, 5)
    shown: dict[tuple[Any, str], int] = {}
    rows, summaries = [], []  # the summaries go last, so the rows above read in line order
    for i in issues:
        key = (i.file, i.code)
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= keep:
            rows.append((i, ["" if i.line is None else str(i.line), "" if i.index is None else str(i.index),
                             i.field or "", f"[{style}]{i.code}[/{style}]", i.message]))
        elif shown[key] == keep + 1:
            summaries.append((i, _summary_cells(i, issues, counts, keep, style)))
    for i, cells in rows + summaries:
        table.add_row(*(([i.file or "train"] if with_file else []) + cells))
    return table


def _summary_cells(first: Any, issues: list[Any], counts: dict[str, int], keep: int, style: str) -> list[str]:
    """One row for the rest of a code's issues: how many, and the first few lines."""
    from tunesmith.data.schema import CODES

    rest = [i for i in issues if (i.file, i.code) == (first.file, first.code)][keep:]
    total = len(rest) if first.file else counts.get(first.code, keep + len(rest)) - keep
    lines = list(dict.fromkeys(str(i.line) for i in rest if i.line is not None))
    where = ", ".join(lines[:5]) + (", …" if len(lines) > 5 else "")
    return [where, "", "", f"[{style}]{first.code}[/{style}]",
            f"… and {total:,} more: {CODES[first.code][1]} (--json lists each)"]


def _print_stats(stats: dict[str, Any], model: str | None) -> None:
    from tunesmith.data.stats import format_histogram

    table = Table(title="per-example statistics" + (f" ({model} tokenizer + chat template)" if model else ""))
    for column in ("", "min", "mean", "p50", "p95", "max", "total"):
        table.add_column(column, justify="right" if column else "left")
    for key, label in (("messages", "messages"), ("chars", "characters"), ("tokens", "tokens"),
                       ("assistant_tokens", "trained assistant tokens")):
        row = stats.get(key)
        if row:
            table.add_row(label, *(f"{row[k]:,}" if isinstance(row[k], int) else f"{row[k]:,.1f}"
                                   for k in ("min", "mean", "p50", "p95", "max", "total")))
    if stats.get("messages"):
        console.print(table)
    if stats.get("histogram"):
        console.print("tokens per example:")
        for line in format_histogram(stats["histogram"]):
            console.print("  " + line, highlight=False)
    if "billing_tokens" in stats:
        console.print(f"context limit {stats['context_length']:,}: {stats['n_over_context']:,} example(s) over; "
                      f"billing tokens {stats['billing_tokens_per_epoch']:,} per epoch × {stats['n_epochs']} "
                      f"epoch(s) (default by OpenAI's heuristic: {stats['default_n_epochs']}) = "
                      f"[bold]{stats['billing_tokens']:,}[/bold]")


@data_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="data file"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="whose tokenizer and chat template to count with"),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="bill this many epochs instead of the default"),
    as_json: bool = typer.Option(False, "--json", help="print the statistics as JSON"),
) -> None:
    """Token counts (min/mean/p50/p95/max, histogram), billing tokens and the default number of epochs."""
    from tunesmith.data.formats import DataError, read_conversations
    from tunesmith.data.stats import token_stats
    from tunesmith.models import ModelLoadError, load_model

    _require_file(file)
    try:
        conversations = read_conversations(file, fmt, _column_map(columns))
        if not conversations:
            raise _fail(f"{file}: no examples")
        with console.status(f"counting tokens with {model}…") if not as_json else _nothing():
            loaded = load_model(model, load_weights=False)
            result = token_stats(conversations, loaded.tokenizer, loaded.context_length, epochs)
    except (DataError, ValueError, ModelLoadError) as e:
        raise _fail(f"{e} (run `tunesmith data validate {file}` to see every problem)"
                    if isinstance(e, DataError) else str(e))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console.print(f"[bold]{file}[/bold]: {result['n_examples']:,} examples")
    _print_stats(result, model)


@data_app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="input data file"),
    dst: Path = typer.Argument(..., help="output JSONL file"),
    to: str = typer.Option("chat", "--to", help="output format: chat, prompt-completion, alpaca, sharegpt"),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
) -> None:
    """Convert between formats (to OpenAI chat JSONL by default)."""
    from tunesmith.data.curate import convert_file
    from tunesmith.data.formats import DataError

    _require_file(src)
    try:
        n = convert_file(src, dst, to=to, fmt=fmt, column_map=_column_map(columns))
    except (DataError, ValueError) as e:
        raise _fail(str(e))
    console.print(f"wrote {n:,} examples to {dst} ({to})")


@data_app.command("split")
def split(
    file: Path = typer.Argument(..., help="data file to split"),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction", help="share held out for validation"),
    seed: int = typer.Option(0, "--seed", help="the same seed gives the same split"),
    out_dir: Path = typer.Option(..., "--out-dir", help="where train.jsonl and validation.jsonl go"),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
) -> None:
    """Seeded, reproducible train/validation split; duplicates never land on both sides."""
    from tunesmith.data.curate import split_file
    from tunesmith.data.formats import DataError

    _require_file(file)
    try:
        result = split_file(file, out_dir, validation_fraction, seed, fmt, _column_map(columns))
    except (DataError, ValueError) as e:
        raise _fail(str(e))
    console.print(f"{len(result.train):,} → {result.train_path}")
    console.print(f"{len(result.validation):,} → {result.validation_path}")


@data_app.command("dedupe")
def dedupe(
    src: Path = typer.Argument(..., help="input data file"),
    dst: Path = typer.Argument(..., help="output chat JSONL without duplicates"),
    exact_only: bool = typer.Option(False, "--exact-only", help="drop only exact and normalised-text duplicates"),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    columns: str | None = typer.Option(None, "--columns", help=COLUMNS_HELP),
) -> None:
    """Drop exact, normalised-text and near duplicates, keeping the first of each."""
    from tunesmith.data.curate import dedupe_file
    from tunesmith.data.formats import DataError

    _require_file(src)
    try:
        result = dedupe_file(src, dst, near=not exact_only, fmt=fmt, column_map=_column_map(columns))
    except (DataError, ValueError) as e:
        raise _fail(str(e))
    for r in result.removed:
        console.print(f"dropped example {r.index + 1} ({r.reason} duplicate of example {r.duplicate_of + 1})")
    console.print(f"kept {len(result.kept):,}, dropped {len(result.removed):,} → {dst}")
