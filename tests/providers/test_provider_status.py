"""The catalog's fine-tuning status: closed provider models fail `train --provider` before any request, with one
line saying since when, why, and what to train instead; `tunesmith models` and docs/providers.md show the same."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.server.live_server import write_chat_file
from tunesmith.catalog import CATALOG, PROVIDER, closed_status_line, get_model_spec
from tunesmith.cli import app

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers.md"


def _flat(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def recording_provider():
    """An HTTP server standing in for OpenAI that records every request it gets."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST = do_DELETE = _record

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()


@pytest.mark.parametrize("model, since, local, successor", [
    ("babbage-002", "2024-10-28", "Llama-2-7b", "gpt-4.1-mini-2025-04-14"),
    ("davinci-002", "2024-10-28", "Llama-2-13b", "gpt-4.1-mini-2025-04-14"),
    ("gpt-3.5-turbo", "2026-10-23", "Llama-3.1-8B-Instruct", "gpt-4o-mini-2024-07-18"),
    ("gpt-4", "2026-10-23", "Llama-3.1-70B-Instruct", "gpt-4.1-2025-04-14"),
])
def test_train_on_a_closed_provider_model_exits_2_before_any_upload(monkeypatch, tmp_path, recording_provider,
                                                                     model, since, local, successor):
    url, seen = recording_provider
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_KEY_FOR_TEST", "sk-test")
    added = runner.invoke(app, ["providers", "add", "openai", "--kind", "openai", "--endpoint", url,
                                "--api-key-env", "OPENAI_KEY_FOR_TEST"])
    assert added.exit_code == 0, added.output
    train = write_chat_file(tmp_path / "train.jsonl")
    out = runner.invoke(app, ["train", "--provider", "openai", "--model", model, "--train", str(train),
                              "--output", str(tmp_path / "run")])
    assert out.exit_code == 2, out.output
    line = _flat(out.output)
    assert f"since {since}" in line and f"--model {local}" in line and successor in line
    assert "https://" in line  # the source
    assert line.count("error:") == 1  # one message (rich may wrap it)
    assert seen == [] and not (tmp_path / "run").exists()


def test_an_rft_only_model_is_refused_before_any_upload(monkeypatch, tmp_path, recording_provider):
    url, seen = recording_provider
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_KEY_FOR_TEST", "sk-test")
    runner.invoke(app, ["providers", "add", "openai", "--kind", "openai", "--endpoint", url,
                        "--api-key-env", "OPENAI_KEY_FOR_TEST"])
    out = runner.invoke(app, ["train", "--provider", "openai", "--model", "o4-mini", "--train",
                              str(write_chat_file(tmp_path / "train.jsonl"))])
    assert out.exit_code == 2 and "only by RFT" in _flat(out.output) and seen == []


def test_every_provider_model_carries_a_dated_sourced_status():
    for spec in CATALOG:
        if spec.trains != PROVIDER:
            assert spec.status is None, spec.id
            continue
        status = spec.status
        assert status is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", status.since), spec.id
        assert status.source.startswith("https://") and status.why, spec.id
        if not status.open:
            successor = get_model_spec(status.successor)
            assert successor.status.open and closed_status_line(spec)
        else:
            assert status.methods and closed_status_line(spec) is None


def test_foundry_models_have_its_published_limits():
    nano, mini = get_model_spec("gpt-4.1-nano"), get_model_spec("gpt-4o-mini")
    assert nano.context_length == 32_768 and mini.context_length == 65_536 and mini.max_output_tokens == 16_384
    assert get_model_spec("o4-mini").status.methods == "RFT" and get_model_spec("gpt-4.1").status.methods == "SFT, DPO"


def test_models_command_shows_the_status_column():
    out = runner.invoke(app, ["models"])
    assert out.exit_code == 0
    text = _flat(out.output)
    assert "fine-tuning status" in text and "closed since 2024-10-28" in text and "open (SFT, DPO)" in text


def test_docs_table_matches_the_catalog():
    doc = DOCS.read_text(encoding="utf-8")
    for spec in CATALOG:
        if spec.status is not None:
            row = next((line for line in doc.splitlines() if line.startswith(f"| `{spec.id}`")), None)
            assert row is not None, f"docs/providers.md has no status row for {spec.id}"
            assert spec.status.since in row, spec.id


def test_cost_of_a_current_foundry_model_counts_hosting_and_asks_for_the_training_price():
    from tunesmith.assess.cost import AZURE_HOSTING_PER_HOUR, estimate_cost_from_tokens

    est = estimate_cost_from_tokens([1_000] * 100, "gpt-4.1-mini", n_epochs=3)
    assert est.training_cost is None and any("--price-per-1m-training-tokens" in n for n in est.notes)
    assert est.hosting_per_month == AZURE_HOSTING_PER_HOUR * 720  # a Standard deployment bills every hour
