"""The main job `make demo` runs: load the default model, validate a sample dataset, answer a chat prompt."""

from __future__ import annotations

from pathlib import Path

from tunesmith.catalog import DEFAULT_MODEL
from tunesmith.cli.app import console

SAMPLE = Path(__file__).parent / "assets" / "sample_chat.jsonl"


def main() -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    runner = CliRunner()
    for args in (["models"], ["data", "validate", str(SAMPLE), "--model", DEFAULT_MODEL],
                 ["chat", "--model", DEFAULT_MODEL, "What is the capital of France?"]):
        console.rule("tunesmith " + " ".join(args[:2]))
        result = runner.invoke(app, args)
        console.print(result.output)
        if result.exit_code != 0:
            raise SystemExit(result.exit_code)


if __name__ == "__main__":
    main()
