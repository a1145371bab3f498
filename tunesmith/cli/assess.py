"""`tunesmith assess` (is fine-tuning right for this use case?) and `tunesmith cost`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.panel import Panel
from rich.table import Table

from tunesmith.catalog import DEFAULT_MODEL
from tunesmith.cli.app import app, console, err_console

STYLE = {"ready": "green", "not yet": "red", "caution": "yellow"}


@app.command("assess")
def assess_command(
    use_case: str | None = typer.Option(None, "--use-case", help="what fine-tuning should achieve: text or a file"),
    train: Path | None = typer.Option(None, "--train", help="training data (JSONL)"),
    validation: Path | None = typer.Option(None, "--validation", help="held-out validation data (JSONL)"),
    baseline: list[Path] = typer.Option([], "--baseline", help="an eval directory of a baseline; repeat for more"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="the catalog model to fine-tune"),
    metric: str | None = typer.Option(None, "--metric", help="the grader that decides success"),
    target: float | None = typer.Option(None, "--target", help="the score on --metric that is good enough"),
    curve: Path | None = typer.Option(None, "--curve", help="a `tunesmith curve` directory of this training file "
                                      "(default: one found beside the --baseline eval dirs)"),
    as_json: bool = typer.Option(False, "--json", help="print the assessment as JSON"),
    output: Path | None = typer.Option(None, "--output", help="write assessment.md/.html/.json into this folder"),
) -> None:
    """Answer Azure's four readiness questions from your evidence, with a verdict and the next commands."""
    from tunesmith.artifacts.curve_dir import CurveDirError
    from tunesmith.artifacts.eval_dir import EvalDirError
    from tunesmith.assess.readiness import assess
    from tunesmith.data.formats import DataError
    from tunesmith.assess.assessment_report import write_assessment
    from tunesmith.assess.usecase import read_use_case

    try:
        result = assess(use_case=read_use_case(use_case), train=train, validation=validation, baselines=baseline,
                        model=model, metric=metric, target=target, curve=curve)
    except (EvalDirError, CurveDirError, DataError, KeyError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    if output:
        written = write_assessment(result, output)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(Panel("\n".join(f"• {r}" for r in result.verdict_reasons),
                        title=f"Fine-tuning {result.model}: [bold]{result.verdict}[/bold]",
                        border_style=STYLE[result.verdict]))
    for f in result.findings:
        body = "\n".join(f"• {r}" for r in f.reasons)
        if f.next_steps:
            body += "\n[bold]Next:[/bold]\n" + "\n".join(
                f"  $ {s}" if s.startswith("tunesmith ") else f"  → {s}" for s in f.next_steps)
        console.print(Panel(body, title=f"{f.question} [bold]{f.status}[/bold]", border_style=STYLE[f.status]))
    if output:
        console.print("wrote " + ", ".join(str(p) for p in written))


@app.command("cost")
def cost_command(
    data: Path = typer.Option(..., "--data", help="training data (JSONL)"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="the catalog model to fine-tune"),
    n_epochs: int | None = typer.Option(None, "--n-epochs", help="default: OpenAI's heuristic for the data size"),
    price_per_1m_training_tokens: float | None = typer.Option(None, "--price-per-1m-training-tokens",
                                                              help="override the price table (provider models)"),
    gpu_hour_price: float | None = typer.Option(None, "--gpu-hour-price", help="US$ per hour of the training machine"),
    throughput: float | None = typer.Option(None, "--throughput", help="measured training tokens/s (local models)"),
    requests_per_day: float | None = typer.Option(None, "--requests-per-day"),
    hosting_hour_price: float | None = typer.Option(None, "--hosting-hour-price",
                                                    help="US$ per hour of hosting (Azure's fee by default; 0 for OpenAI)"),
    prompt_tokens_before: float | None = typer.Option(None, "--prompt-tokens-before",
                                                      help="prompt tokens per request today (with few-shot/reference)"),
    prompt_tokens_after: float | None = typer.Option(None, "--prompt-tokens-after",
                                                     help="prompt tokens per request with the fine-tuned model"),
    before_eval: Path | None = typer.Option(None, "--before-eval", help="eval dir whose prompt_tokens_mean is 'before'"),
    after_eval: Path | None = typer.Option(None, "--after-eval", help="eval dir whose prompt_tokens_mean is 'after'"),
    completion_tokens: float = typer.Option(0.0, "--completion-tokens", help="output tokens per request"),
    before_model: str | None = typer.Option(None, "--before-model", help="the model used today, if another one"),
    price_per_1m_input_before: float | None = typer.Option(None, "--price-per-1m-input-before"),
    price_per_1m_input_after: float | None = typer.Option(None, "--price-per-1m-input-after"),
    benchmarks: Path = typer.Option(Path("docs/benchmarks.md"), "--benchmarks",
                                    help="measured throughputs to read (markdown tables)"),
    as_json: bool = typer.Option(False, "--json", help="print the estimate as JSON"),
) -> None:
    """Estimate training cost (tokens × epochs × price, or hours × hour price), hosting, savings, break-even."""
    from tunesmith.assess.cost import UsageAssumptions, estimate_cost
    from tunesmith.artifacts.eval_dir import EvalDirError, read_eval_run
    from tunesmith.data.formats import DataError

    try:
        if before_eval:
            prompt_tokens_before = read_eval_run(before_eval).prompt_tokens_mean
        if after_eval:
            prompt_tokens_after = read_eval_run(after_eval).prompt_tokens_mean
        usage = UsageAssumptions(requests_per_day, prompt_tokens_before, prompt_tokens_after, completion_tokens,
                                 before_model, price_per_1m_input_before, price_per_1m_input_after)
        est = estimate_cost(data, model, n_epochs=n_epochs, price_per_1m_training_tokens=price_per_1m_training_tokens,
                            gpu_hour_price=gpu_hour_price, throughput=throughput,
                            hosting_hour_price=hosting_hour_price, usage=usage, benchmarks=benchmarks)
    except (EvalDirError, DataError, KeyError, ValueError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(est.to_dict(), indent=2))
        return
    table = Table(title=f"Fine-tuning cost estimate: {est.model} ({est.trains})", show_header=False)
    table.add_row("examples", f"{est.n_examples:,}")
    table.add_row("billing tokens", f"{est.billing_tokens:,}  ({est.token_counting})")
    table.add_row("epochs", str(est.n_epochs))
    table.add_row("trained tokens", f"{est.trained_tokens:,}")
    if est.training_hours is not None:
        table.add_row("training time", _duration(est.training_hours))
    table.add_row("training cost", _money(est.training_cost))
    table.add_row("hosting per month", _money(est.hosting_per_month))
    table.add_row("inference saving per month", _money(est.inference_saving_per_month))
    table.add_row("net saving per month", _money(est.net_saving_per_month))
    table.add_row("break-even", "never" if est.net_saving_per_month is not None and est.break_even_days is None
                  else "n/a" if est.break_even_days is None else f"{est.break_even_days:,.1f} days")
    console.print(table)
    for s in est.sources:
        console.print(f"[dim]source:[/dim] {s}")
    for n in est.notes:
        console.print(f"[yellow]note:[/yellow] {n}")
    console.print("[dim]All figures are estimates; prices change, check the provider's pricing page.[/dim]")


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _duration(hours: float) -> str:
    return f"{hours:,.2f} h" if hours >= 1 else f"{hours * 60:,.1f} min"
