"""The Typer application every command module attaches to."""

import typer
from rich.console import Console

app = typer.Typer(
    name="tunesmith",
    help="A local fine-tuning studio: decide, prepare data, baseline, fine-tune, evaluate, deploy, cost.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # error lines stay whole: paths can be copied
