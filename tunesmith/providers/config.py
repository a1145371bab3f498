"""Provider configuration: where a provider's fine-tuning API lives and where its key comes from.

    tunesmith providers add azure-east --kind azure --endpoint https://res.openai.azure.com \
        --api-key-env AZURE_OPENAI_API_KEY --api-version 2024-10-21

The store (`<data dir>/providers.json`) holds names, endpoints and the *name* of the environment variable
with the key, never a key: keys come from the environment, or from the system keyring when `keyring` is
installed and holds one under service "tunesmith", user NAME.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunesmith.paths import atomic_write_text, data_dir

KEYRING_SERVICE = "tunesmith"
DEFAULT_AZURE_API_VERSION = "2024-10-21"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProviderError(RuntimeError):
    """A provider problem the user can act on: missing key, unknown provider, model not deployed, failed job."""


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="how commands refer to it: --provider NAME")
    kind: Literal["openai", "azure"] = Field(..., description="openai: OpenAI's API (or a compatible server); "
                                             "azure: an Azure OpenAI resource")
    endpoint: str = Field(..., description="base URL: https://api.openai.com/v1, or the Azure resource's "
                          "https://NAME.openai.azure.com")
    api_key_env: str = Field(..., description="environment variable that holds the API key")
    api_version: str | None = Field(None, description="Azure API version (default " + DEFAULT_AZURE_API_VERSION + ")")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PROVIDER_NAME.match(v):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME.match(v) or v.startswith("sk-"):
            raise ValueError("give the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself")
        return v

    def resolved_api_version(self) -> str | None:
        return (self.api_version or DEFAULT_AZURE_API_VERSION) if self.kind == "azure" else None

    def api_key(self) -> str:
        """The key from the environment, else the keyring; ProviderError naming both places when absent."""
        key = os.environ.get(self.api_key_env) or _keyring_key(self.name)
        if not key:
            raise ProviderError(f"provider {self.name!r}: no API key; set the environment variable "
                                f"{self.api_key_env} (or store one with `keyring set {KEYRING_SERVICE} {self.name}`)")
        return key


def _keyring_key(name: str) -> str | None:
    try:
        import keyring
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, name)
    except Exception:  # no usable keyring backend on this machine: same as no key there
        return None


def providers_path() -> Path:
    return data_dir() / "providers.json"


def load_providers(path: Path | None = None) -> dict[str, ProviderConfig]:
    """Every configured provider by name ({} when none); errors name the file and the entry."""
    path = path or providers_path()
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ProviderError(f"{path}: cannot read the provider store: {e}") from e
    providers = {}
    for i, entry in enumerate(raw.get("providers", [])):
        try:
            provider = ProviderConfig(**entry)
        except (TypeError, ValidationError) as e:
            raise ProviderError(f"{path}: providers[{i}] is invalid: {e}") from e
        providers[provider.name] = provider
    return providers


def save_providers(providers: dict[str, ProviderConfig], path: Path | None = None) -> Path:
    path = path or providers_path()
    data = {"providers": [p.model_dump(exclude_none=True) for p in sorted(providers.values(), key=lambda p: p.name)]}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def add_provider(provider: ProviderConfig, *, replace: bool = False, path: Path | None = None) -> Path:
    providers = load_providers(path)
    if provider.name in providers and not replace:
        raise ProviderError(f"provider {provider.name!r} exists already; remove it first or pass --replace")
    providers[provider.name] = provider
    return save_providers(providers, path)


def remove_provider(name: str, path: Path | None = None) -> None:
    providers = load_providers(path)
    if name not in providers:
        raise ProviderError(_unknown(name, providers))
    del providers[name]
    save_providers(providers, path)


def get_provider(name: str, path: Path | None = None) -> ProviderConfig:
    providers = load_providers(path)
    if name not in providers:
        raise ProviderError(_unknown(name, providers))
    return providers[name]


def _unknown(name: str, providers: dict[str, ProviderConfig]) -> str:
    known = ", ".join(sorted(providers)) or "none yet"
    return f"no provider named {name!r} (configured: {known}); add one with `tunesmith providers add`"
