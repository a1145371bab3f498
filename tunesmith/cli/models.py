"""`tunesmith models` and `tunesmith chat`."""

from __future__ import annotations

import typer
from rich.table import Table

from tunesmith.catalog import CATALOG, DEFAULT_MODEL, ModelSpec
from tunesmith.cli.app import app, console, err_console


@app.command("models")
def list_models() -> None:
    """Show the model catalog: family, context limit, training cutoff, where each model trains."""
    table = Table(title="tunesmith model catalog")
    for col in ("id", "family", "params", "context", "data up to", "trains", "fine-tuning status",
                "hugging face id / note"):
        table.add_column(col)
    for s in CATALOG:
        where = "locally (open weights)" if s.local else "provider API"
        ctx = f"{s.context_length:,}" + (f" (out {s.max_output_tokens:,})" if s.max_output_tokens else "")
        table.add_row(s.id + (" *" if s.id == DEFAULT_MODEL else ""), s.family, s.params, ctx, s.training_cutoff,
                      where, fine_tuning_status(s), s.hf_id or s.note)
    console.print(table)
    console.print("* offline default model")


def fine_tuning_status(spec: ModelSpec) -> str:
    """'open (SFT, DPO) since 2025-02-06' / 'closed since 2024-10-28 -> gpt-4.1-mini-…'; local models train here."""
    if spec.status is None:
        return "trains here"
    if spec.status.open:
        return f"open ({spec.status.methods}) as of {spec.status.since}"
    return f"closed since {spec.status.since}" + (f" → {spec.status.successor}" if spec.status.successor else "")


@app.command("chat")
def chat(
    prompt: str = typer.Argument(..., help="the user message"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="catalog id, hub id, path, .gguf or run dir"),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
) -> None:
    """Answer one chat prompt with a model (greedy)."""
    from tunesmith.generation import generate
    from tunesmith.models import ModelLoadError, load_model

    try:
        with console.status(f"loading {model}…"):
            loaded = load_model(model)
    except ModelLoadError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    answer = generate(loaded.model, loaded.tokenizer, [messages], max_new_tokens=max_new_tokens)[0].text
    console.print(f"[bold]{model}[/bold]: {answer.strip()}")
