"""One reply from any model tunesmith can generate with: a local one (catalog id, hub id, run dir, adapter) or a
configured provider's (`provider:NAME:MODEL`). Model graders (score_model, label_model) ask through here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tunesmith.generation import ContextLengthError, Generation, GenerationError, generate

PROVIDER_PREFIX = "provider:"


class ModelReplyError(RuntimeError):
    """The model could not be loaded or did not answer; the message says which and why."""


def model_reply(model: str, messages: list[dict[str, Any]], *, max_tokens: int = 256, temperature: float = 0.0,
                top_p: float = 1.0, seed: int | None = None) -> Generation:
    """The model's reply to `messages` (greedy unless a temperature is given)."""
    if model.startswith(PROVIDER_PREFIX):
        return _provider_reply(model, messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    loaded = _load(model)
    try:
        return generate(loaded.model, loaded.tokenizer, [messages], max_new_tokens=max_tokens,
                        temperature=temperature, top_p=top_p, seed=seed)[0]
    except (GenerationError, ContextLengthError, ValueError) as e:  # e.g. a rendered prompt over the context
        raise ModelReplyError(f"model {model!r} could not answer: {e}") from None


@lru_cache(maxsize=4)  # a grader asks the same model for every item: load it once
def _load(model: str) -> Any:
    from tunesmith.models import ModelLoadError, load_model

    try:
        return load_model(model)
    except (ModelLoadError, OSError, ValueError, KeyError) as e:
        raise ModelReplyError(f"model {model!r} cannot run here: {e}. Name a model tunesmith loads (catalog id, "
                              f"hub id, run dir, adapter) or {PROVIDER_PREFIX}NAME:MODEL for a configured "
                              "provider's model") from None


def _provider_reply(model: str, messages: list[dict[str, Any]], **params: Any) -> Generation:
    import openai

    from tunesmith.generation.remote import generate_remote
    from tunesmith.providers.config import ProviderError

    provider, _, model_id = model[len(PROVIDER_PREFIX):].partition(":")
    if not provider or not model_id:
        raise ModelReplyError(f"{model!r}: write a provider model as {PROVIDER_PREFIX}NAME:MODEL, e.g. "
                              f"{PROVIDER_PREFIX}azure-east:gpt-4.1-mini")
    try:
        return generate_remote(provider, model_id, [messages], max_new_tokens=params["max_tokens"],
                               temperature=params["temperature"], top_p=params["top_p"], seed=params["seed"],
                               batch_size=1)[0]
    except (ProviderError, OSError, openai.OpenAIError) as e:
        raise ModelReplyError(f"{model!r}: {e}") from None
