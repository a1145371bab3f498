"""Provider configuration and its CLI: keys stay in the environment, the store is plain JSON without secrets."""

from __future__ import annotations

import json

import openai
import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.providers.client import make_client
from tunesmith.providers.config import ProviderConfig, ProviderError, get_provider, load_providers

runner = CliRunner()


@pytest.fixture()
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    return tmp_path


def test_add_list_remove_through_the_cli_never_stores_the_key(home, monkeypatch):
    monkeypatch.setenv("MY_AZURE_KEY", "secret-value-123")
    out = runner.invoke(app, ["providers", "add", "east", "--kind", "azure", "--endpoint",
                              "https://res.openai.azure.com/", "--api-key-env", "MY_AZURE_KEY",
                              "--api-version", "2024-10-21"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["providers", "add", "oa", "--kind", "openai", "--api-key-env", "MISSING_KEY_VAR"])
    assert out.exit_code == 0, out.output

    stored = (home / "providers.json").read_text()
    assert "secret-value-123" not in stored
    assert json.loads(stored)["providers"][0] == {"name": "east", "kind": "azure",
                                                  "endpoint": "https://res.openai.azure.com",
                                                  "api_key_env": "MY_AZURE_KEY", "api_version": "2024-10-21"}
    assert get_provider("oa").endpoint == "https://api.openai.com/v1"

    listing = runner.invoke(app, ["providers", "list"])
    assert listing.exit_code == 0 and "east" in listing.output and "secret-value-123" not in listing.output

    assert runner.invoke(app, ["providers", "remove", "east"]).exit_code == 0
    assert set(load_providers()) == {"oa"}
    again = runner.invoke(app, ["providers", "remove", "east"])
    assert again.exit_code == 2 and "no provider named 'east'" in again.output


def test_a_key_given_where_a_variable_name_belongs_is_refused(home):
    out = runner.invoke(app, ["providers", "add", "oa", "--kind", "openai", "--api-key-env", "sk-proj-abcdef123"])
    assert out.exit_code == 2 and "not the key itself" in out.output
    assert not (home / "providers.json").exists()
    bad_kind = runner.invoke(app, ["providers", "add", "x", "--kind", "vertex", "--api-key-env", "K"])
    assert bad_kind.exit_code == 2 and "--kind" in bad_kind.output
    no_endpoint = runner.invoke(app, ["providers", "add", "x", "--kind", "azure", "--api-key-env", "K"])
    assert no_endpoint.exit_code == 2 and "--endpoint" in no_endpoint.output


def test_adding_a_name_twice_needs_replace(home):
    args = ["providers", "add", "oa", "--kind", "openai", "--api-key-env", "K"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 2
    assert runner.invoke(app, args + ["--replace", "--endpoint", "http://127.0.0.1:9/v1"]).exit_code == 0
    assert get_provider("oa").endpoint == "http://127.0.0.1:9/v1"


def test_a_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    provider = ProviderConfig(name="p", kind="openai", endpoint="http://127.0.0.1:9/v1", api_key_env="NOT_SET_ANYWHERE")
    with pytest.raises(ProviderError, match="NOT_SET_ANYWHERE"):
        make_client(provider)


def test_clients_are_the_official_sdk_for_each_kind(monkeypatch):
    monkeypatch.setenv("K", "key")
    azure = make_client(ProviderConfig(name="a", kind="azure", endpoint="https://r.openai.azure.com", api_key_env="K"))
    assert isinstance(azure, openai.AzureOpenAI) and str(azure.base_url).startswith("https://r.openai.azure.com/openai")
    assert azure._custom_query["api-version"] == "2024-10-21"  # the default API version
    plain = make_client(ProviderConfig(name="o", kind="openai", endpoint="http://h:1/v1", api_key_env="K"))
    assert type(plain) is openai.OpenAI and str(plain.base_url) == "http://h:1/v1/"


def test_a_corrupt_store_is_reported_with_its_path(home):
    (home / "providers.json").write_text('{"providers": [{"name": "x", "kind": "gcp"}]}')
    with pytest.raises(ProviderError, match=r"providers\.json: providers\[0\] is invalid"):
        load_providers()
