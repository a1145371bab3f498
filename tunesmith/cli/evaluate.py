"""`tunesmith eval` and `tunesmith compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from tunesmith.cli.app import app, console, err_console


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., "--model", "-m", help="catalog id, hub id, model dir, adapter or run dir"),
    data: Path = typer.Option(..., "--data", help="test file (chat JSONL or any format tunesmith reads)"),
    grader: list[str] = typer.Option([], "--grader", "-g", help="exact, normalized, contains, regex:P, json, "
                                     "json-schema:FILE, bleu, chrf, rouge-l, python:MOD:FUNC, sql-exec:DB, "
                                     "judge:MODEL (repeatable)"),
    grader_file: Path | None = typer.Option(None, "--grader-file", help="JSON file of OpenAI grader objects "
                                            "(string_check, text_similarity, score_model, label_model, python, "
                                            "multi); {{ item.reference }} is the reference answer"),
    strategy: str = typer.Option("zero-shot", "--strategy", "-s",
                                 help="zero-shot | few-shot:K[:nn] | rag:DIR[:K]; combine with '+'"),
    system_prompt: Path | None = typer.Option(None, "--system-prompt", help="file whose text replaces the "
                                              "data's system prompt"),
    pool: Path | None = typer.Option(None, "--pool", help="examples for few-shot (e.g. the training file)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="eval directory to write (default: <data dir>/evals/<model>-<data>-<strategy>, where the studio lists it)"),
    limit: int | None = typer.Option(None, "--limit", help="only the first N items"),
    batch_size: int = typer.Option(16, "--batch-size", help="rows decoded together; a finished row's slot is "
                                                               "refilled at the next step"),
    engine: str = typer.Option("tunesmith", "--engine", help="tunesmith (our engine, CPU or GPU) or vllm (GPU, "
                                                             "when vLLM is installed)"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    stop: list[str] = typer.Option([], "--stop", help="stop string (repeatable); trimmed from the output"),
    provider: str | None = typer.Option(None, "--provider", help="generate through this configured provider's "
                                        "chat completions (--model: its model id, or an Azure deployment name)"),
) -> None:
    """Generate answers for a test file and grade them; writes predictions.jsonl and summary.json."""
    from tunesmith.baselines.strategy import StrategyError
    from tunesmith.data.formats import DataError
    from tunesmith.evaluate.graders import GraderError
    from tunesmith.evaluate.run import evaluate
    from tunesmith.models import ModelLoadError
    from tunesmith.progress import both, log_lines
    from tunesmith.providers.config import ProviderError

    prompt_text = system_prompt.read_text(encoding="utf-8").strip() if system_prompt else None
    try:
        graders: list[Any] = list(grader)
        if grader_file is not None:
            from tunesmith.evaluate.openai_graders import load_grader_file

            graders += load_grader_file(grader_file)
            names = [g if isinstance(g, str) else g.name for g in graders]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise GraderError(f"{grader_file}: two graders are named {twice[0]!r} (a --grader and a grader "
                                  "in the file); rename the one in the file")
        with console.status(f"evaluating {model} on {data}…") as status:
            result = evaluate(
                model, data, graders, strategy=strategy, output_dir=output, system_prompt=prompt_text,
                pool_path=pool, limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens, stop=stop,
                on_progress=both(lambda done, total: status.update(f"generating {done}/{total}…"),
                                 log_lines(f"eval {model}")), provider=provider, engine=engine,
            )
    except (GraderError, StrategyError, ModelLoadError, DataError, FileNotFoundError, ValueError,
            ProviderError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    summary = result.summary
    for note in summary.get("strategy_notes", []):
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    table = Table(title=escape(f"{summary['model']} · {summary['strategy']} · {summary['n']} items"))
    for col in ("grader", "mean", "pass rate", "95% CI"):
        table.add_column(col)
    for name, stats in summary["graders"].items():
        lo, hi = stats["ci95"] or (float("nan"), float("nan"))
        table.add_row(escape(name), f"{stats['mean']:.3f}", f"{stats['pass_rate']:.1%}", f"[{lo:.3f}, {hi:.3f}]")
    console.print(table)
    console.print(f"{summary['examples_per_s']:.2f} examples/s · wrote {result.output_dir}")


@app.command("compare")
def compare_command(
    evals: list[Path] = typer.Argument(..., help="eval directories (the first is the baseline by default)"),
    baseline: Path | None = typer.Option(None, "--baseline", help="which eval directory is the baseline"),
    output: Path | None = typer.Option(None, "--output", "-o", help="report folder (default: ./comparison)"),
    pair_by: str = typer.Option("question", "--pair-by", help="question (what each item asks and expects, "
                                "whatever its system prompt), id (the whole conversation) or line (position)"),
    fail_on_degraded: bool = typer.Option(False, "--fail-on-degraded", help="exit 1 when any run is Degraded"),
) -> None:
    """Paired A/B comparison: delta, 95% CI, McNemar / permutation p, verdict, items fixed and broken.

    Exits 1 without a verdict when an eval does not pair with the baseline (different test files or graders)."""
    from tunesmith.evaluate.compare import compare
    from tunesmith.evaluate.comparison_report import prompt_tokens_text, write_report

    try:
        comparison = compare(evals, baseline=baseline, pair_by=pair_by)
    except (FileNotFoundError, ValueError, KeyError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    for t in comparison.treatments:
        console.print(escape(f"{t.treatment.label}: {t.pairing.describe()}"))
        if t.problem:
            continue
        table = Table(title=escape(f"{t.treatment.label} vs {comparison.baseline.label}"))
        for col in ("grader", "n", "delta", "prompt tokens", "95% CI", "p", "verdict", "fixed", "broken"):
            table.add_column(col)
        for g in t.graders:
            style = {"Improved": "green", "Degraded": "bold red"}.get(g.verdict, "")
            table.add_row(escape(g.grader), str(g.n), f"{g.delta:+.3f}", escape(prompt_tokens_text(t)),
                          f"[{g.ci95[0]:+.3f}, {g.ci95[1]:+.3f}]", f"{g.p_value:.3g}",
                          f"[{style}]{g.verdict}[/{style}]" if style else g.verdict,
                          str(len(g.fixed)), str(len(g.broken)))
        console.print(table)
    for warning in comparison.warnings:
        console.print(f"[bold white on red] ⚠ {escape(warning)} [/bold white on red]")
    files = write_report(comparison, output or Path("comparison"))
    console.print(f"report: {files.markdown} · {files.html}")
    for problem in comparison.problems:
        err_console.print(f"[red]error:[/red] {escape(problem)} No verdict.")
    if comparison.problems or (fail_on_degraded and comparison.warnings):
        raise typer.Exit(1)
