"""`tunesmith curve`: a learning curve, so "how much data, which model" is answered before paying for it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from tunesmith.cli.app import app, console, err_console


@app.command("curve")
def curve_command(
    model: str = typer.Option(..., "--model", "-m", help="the model to fine-tune at every point (runs locally)"),
    train: Path = typer.Option(..., "--train", help="training data; each point trains on a nested subset"),
    test: Path = typer.Option(..., "--test", help="test file every point is evaluated on (no training example)"),
    grader: list[str] = typer.Option([], "--grader", "-g", help="as `tunesmith eval --grader` (repeatable); "
                                     "the first is the curve's metric unless --metric says"),
    grader_file: Path | None = typer.Option(None, "--grader-file", help="JSON file of OpenAI grader objects"),
    metric: str | None = typer.Option(None, "--metric", help="the grader the curve is drawn and judged on"),
    validation: Path | None = typer.Option(None, "--validation", help="validation data for every point's training"),
    fractions: str = typer.Option("0.125,0.25,0.5,1", "--fractions", help="shares of the training file, in (0, 1]"),
    models: str = typer.Option("", "--models", help="other local models, each at the two largest fractions: "
                               "M1,M2 (does size or data pay more?)"),
    budget_minutes: float | None = typer.Option(None, "--budget-minutes", min=0.1, help="time the first point, "
                                                "then keep the points that fit; say which were left out"),
    baseline: list[Path] = typer.Option([], "--baseline", help="eval dir of a baseline on the same test file, "
                                        "drawn at 0 examples (repeatable)"),
    output: Path = typer.Option(..., "--output", "-o", help="curve directory (curve.json, curve.png, points/); "
                                "the same command on it again resumes"),
    n_epochs: str = typer.Option("auto", "--n-epochs", help="auto (per subset size, as `tunesmith train`) or N"),
    batch_size: str | None = typer.Option(None, "--batch-size", help="as `tunesmith train` (default auto)"),
    learning_rate_multiplier: str | None = typer.Option(None, "--learning-rate-multiplier"),
    method: str | None = typer.Option(None, "--method", help="lora | qlora | full (default lora)"),
    seed: int = typer.Option(0, "--seed", help="the subsets' and the training's seed"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="only the first N test items"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    eval_batch_size: int = typer.Option(16, "--eval-batch-size"),
    gpu_hour_price: float | None = typer.Option(None, "--gpu-hour-price", help="US$ per hour of this machine: "
                                                "turns each point's measured time into money"),
    as_json: bool = typer.Option(False, "--json", help="print curve.json"),
) -> None:
    """Train on nested subsets (and other model sizes), evaluate each, fit the curve, say whether more data helps."""
    from tunesmith.artifacts.curve_dir import CurveDirError
    from tunesmith.artifacts.eval_dir import EvalDirError
    from tunesmith.curve.checks import CurveError, parse_fractions
    from tunesmith.curve.request import CurveRequest
    from tunesmith.curve.runner import run_curve
    from tunesmith.data.formats import DataError
    from tunesmith.evaluate.graders import GraderError
    from tunesmith.train_config import TrainConfigError

    recipe = {k: v for k, v in (("batch_size", batch_size), ("learning_rate_multiplier", learning_rate_multiplier),
                                ("method", method)) if v is not None}
    try:
        request = CurveRequest(
            model=model, train=train, test=test, graders=list(grader), grader_file=grader_file, output=output,
            validation=validation, fractions=parse_fractions(fractions),
            models=[m.strip() for m in models.split(",") if m.strip()], budget_minutes=budget_minutes,
            baselines=list(baseline), metric=metric, n_epochs=n_epochs if n_epochs == "auto" else _int(n_epochs),
            recipe=recipe, seed=seed, limit=limit, max_new_tokens=max_new_tokens, eval_batch_size=eval_batch_size,
            gpu_hour_price=gpu_hour_price)
        curve = run_curve(request, log=(lambda line: err_console.print(escape(line))) if as_json else
                          (lambda line: console.print(escape(line), soft_wrap=True)))
    except (CurveError, CurveDirError, EvalDirError, GraderError, DataError, TrainConfigError, FileNotFoundError,
            ValueError, KeyError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(curve, indent=2))
        return
    _print_curve(curve)


def _int(text: str) -> int:
    from tunesmith.curve.checks import CurveError

    try:
        return int(text)
    except ValueError:
        raise CurveError(f"--n-epochs: {text!r} is not 'auto' or a whole number") from None


def _print_curve(curve: dict) -> None:
    table = Table(title=escape(f"{curve['model']} · {curve['metric']} · {curve['n_test_items']} test items"))
    for col in ("model", "examples", "tokens", "epochs", "score", "95% CI", "seconds", "cost"):
        table.add_column(col)
    for b in curve["baselines"]:
        table.add_row(escape(b["label"]), "0", "", "", f"{b['score']:.3f}", _ci(b), "", "")
    for p in curve["points"]:
        table.add_row(escape(p["model"]), str(p["examples"]), f"{p['tokens']:,}", str(p["n_epochs"]),
                      f"{p['score']:.3f}", _ci(p), f"{p['seconds']:.0f}",
                      f"${p['cost']:.2f}" if p["cost"] is not None else "n/a")
    for p in curve["projection"]:
        table.add_row("projection (extrapolated)", str(p["examples"]), "", "", f"{p['score']:.3f}",
                      f"[{p['low']:.3f}, {p['high']:.3f}]", f"≈ {p['seconds_estimate']:.0f}", "")
    console.print(table)
    console.print(f"fit: {escape(curve['fit']['formula'])}")
    last = curve["last_doubling"]
    if last and "delta" in last:
        console.print(f"last doubling ({last['from']} → {last['to']} examples): {last['delta']:+.3f}, "
                      f"{last['fixed']} fixed, {last['broken']} broken, p = {last['p']:.3g} ({last['verdict']})")
    for x in curve["left_out"]:
        console.print(f"[yellow]left out by the budget:[/yellow] {x['model']} at {x['fraction']:g} "
                      f"({x['examples']} examples, ≈ {x['estimated_seconds'] / 60:.1f} min)")
    console.print(f"[bold]{escape(curve['verdict']['message'])}[/bold]")
    console.print(f"{curve['points_seconds']:.0f} s of training and evaluation in all (this run: "
                  f"{curve['wall_seconds']:.0f} s) on {escape(curve['cpu'])}")


def _ci(row: dict) -> str:
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row.get("ci_low") is not None else ""
