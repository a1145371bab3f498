"""The official `openai` SDK client for a configured provider, and the retry loop around long-lived calls.

The SDK retries a failed request itself (`max_retries`: connection errors, 408, 409, 429, 5xx, honouring
`retry-after`). That covers a blip; following a job for an hour must also ride out a provider that is away
for minutes, so `call_with_retries` wraps each poll in a second, patient loop with capped exponential backoff.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

import openai

from tunesmith.providers.config import ProviderConfig, ProviderError, get_provider

log = logging.getLogger("tunesmith.providers")
T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3  # the SDK's own retries per request (its default is 2)
DEFAULT_TIMEOUT_S = 120.0


def make_client(provider: ProviderConfig | str, *, max_retries: int = DEFAULT_MAX_RETRIES,
                timeout: float = DEFAULT_TIMEOUT_S) -> openai.OpenAI:
    """`openai.OpenAI` for kind "openai", `openai.AzureOpenAI` (api-key header, api-version query) for "azure"."""
    if isinstance(provider, str):
        provider = get_provider(provider)
    key = provider.api_key()
    if provider.kind == "azure":
        return openai.AzureOpenAI(azure_endpoint=provider.endpoint, api_key=key,
                                  api_version=provider.resolved_api_version(), max_retries=max_retries,
                                  timeout=timeout)
    return openai.OpenAI(base_url=provider.endpoint, api_key=key, max_retries=max_retries, timeout=timeout)


def is_azure(client: openai.OpenAI) -> bool:
    return isinstance(client, openai.AzureOpenAI)


def is_transient(error: BaseException) -> bool:
    """Worth trying again later: the network, a timeout, 408, 429 or a 5xx."""
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in (408, 429) or error.status_code >= 500
    return False


def call_with_retries(fn: Callable[[], T], *, what: str, patience_s: float = 600.0, base_delay_s: float = 1.0,
                      max_delay_s: float = 30.0, on_retry: Callable[[BaseException, float], None] | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """fn(), tried again on transient errors with jittered exponential backoff for up to `patience_s` seconds.

    A non-transient error (400, 401, 404 …) is raised at once; so is the last transient one once patience runs
    out, wrapped in ProviderError naming `what`."""
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        try:
            return fn()
        except openai.OpenAIError as e:
            if not is_transient(e):
                raise
            delay = _backoff(e, attempt, base_delay_s, max_delay_s)
            if time.monotonic() + delay > deadline:
                raise ProviderError(f"{what}: the provider did not answer for {patience_s:.0f}s: {_describe(e)}") from e
            log.warning("%s: %s; trying again in %.1fs", what, _describe(e), delay)
            if on_retry is not None:
                on_retry(e, delay)
            sleep(delay)
            attempt += 1


def _backoff(error: BaseException, attempt: int, base: float, cap: float) -> float:
    """The provider's retry-after when it sent one, else base·2^attempt with jitter (so clients spread out)."""
    response = getattr(error, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        if header is not None:
            return min(cap, max(0.0, float(header)))
    except ValueError:
        pass  # an HTTP date: fall back to our own schedule
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


def _describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} {error.message}"
    return f"{type(error).__name__}: {error}"
