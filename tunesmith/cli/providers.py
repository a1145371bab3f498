"""`tunesmith providers add|list|remove|check|cancel`: where provider models (gpt-35-turbo, gpt-4, babbage-002,
davinci-002) are fine-tuned. Training and evaluation then take `--provider NAME`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tunesmith.cli.app import app, console, err_console

providers_app = typer.Typer(help="Configure the OpenAI / Azure OpenAI accounts that fine-tune provider models.",
                            no_args_is_help=True)
app.add_typer(providers_app, name="providers")

OPENAI_ENDPOINT = "https://api.openai.com/v1"


@providers_app.command("add")
def add(
    name: str = typer.Argument(..., help="how --provider refers to it"),
    kind: str = typer.Option(..., "--kind", help="openai | azure"),
    endpoint: str | None = typer.Option(None, "--endpoint", help=f"base URL (openai default: {OPENAI_ENDPOINT}; "
                                        "azure: https://RESOURCE.openai.azure.com)"),
    api_key_env: str = typer.Option(..., "--api-key-env", help="NAME of the environment variable holding the key "
                                    "(the key itself is never stored)"),
    api_version: str | None = typer.Option(None, "--api-version", help="Azure API version"),
    replace: bool = typer.Option(False, "--replace", help="overwrite a provider of the same name"),
) -> None:
    """Add a provider; its key stays in the environment (or the system keyring)."""
    from pydantic import ValidationError

    from tunesmith.providers.config import ProviderConfig, ProviderError, add_provider

    if kind not in ("openai", "azure"):
        _fail(f"--kind must be openai or azure, got {kind!r}")
    if endpoint is None and kind == "openai":
        endpoint = OPENAI_ENDPOINT
    if endpoint is None:
        _fail("--endpoint is required for an Azure provider (https://RESOURCE.openai.azure.com)")
    try:
        provider = ProviderConfig(name=name, kind=kind, endpoint=endpoint, api_key_env=api_key_env,
                                  api_version=api_version)
        path = add_provider(provider, replace=replace)
    except ValidationError as e:
        _fail("; ".join(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
                        for err in e.errors()))
    except ProviderError as e:
        _fail(str(e))
    console.print(f"added provider [bold]{name}[/bold] ({kind}, {provider.endpoint}) to {path}; "
                  f"key read from ${api_key_env} when used")


@providers_app.command("list")
def list_providers() -> None:
    """Show configured providers and whether each one's key is available now."""
    from tunesmith.providers.config import ProviderError, load_providers

    try:
        providers = load_providers()
    except ProviderError as e:
        _fail(str(e))
    if not providers:
        console.print("no providers yet: `tunesmith providers add NAME --kind openai|azure --api-key-env VAR`")
        return
    table = Table(title="providers")
    for col in ("name", "kind", "endpoint", "api version", "key from", "key present"):
        table.add_column(col)
    for p in providers.values():
        try:
            p.api_key()
            present = "yes"
        except ProviderError:
            present = "[red]no[/red]"
        table.add_row(p.name, p.kind, p.endpoint, p.resolved_api_version() or "", f"${p.api_key_env}", present)
    console.print(table)


@providers_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Forget a provider (its jobs and models at the provider are untouched)."""
    from tunesmith.providers.config import ProviderError, remove_provider

    try:
        remove_provider(name)
    except ProviderError as e:
        _fail(str(e))
    console.print(f"removed provider {name}")


@providers_app.command("check")
def check(name: str = typer.Argument(...)) -> None:
    """Call the provider once (list its models): is the endpoint reachable and the key accepted?"""
    import openai

    from tunesmith.providers.client import make_client
    from tunesmith.providers.config import ProviderError

    try:
        models = make_client(name, max_retries=1).models.list().data
    except ProviderError as e:
        _fail(str(e))
    except openai.AuthenticationError as e:
        _fail(f"{name}: the key was refused ({e.message})")
    except openai.APIConnectionError as e:
        _fail(f"{name}: cannot reach the endpoint: {e}")
    except openai.APIStatusError as e:
        _fail(f"{name}: HTTP {e.status_code} {e.message}")
    console.print(f"{name}: reachable, key accepted, {len(models)} models listed")


@providers_app.command("cancel")
def cancel(run_dir: Path = typer.Argument(..., help="the run directory of a provider run")) -> None:
    """Cancel the provider job behind a run directory."""
    from tunesmith.providers.config import ProviderError
    from tunesmith.providers.remote_train import cancel_remote

    try:
        status = cancel_remote(run_dir)
    except ProviderError as e:
        _fail(str(e))
    console.print(f"cancel requested; the job is {status}")


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
