"""Generation through a provider's chat completions, returning what `tunesmith.generation.generate` returns, so a
provider model (`ft:gpt-35-turbo-0125:…`, or an Azure deployment) enters the same evaluations and comparisons.

    generations = generate_remote("azure-east", "my-ft-deployment", prompts, max_new_tokens=64)

Requests run `batch_size` at a time in threads (the provider does the batching); each one is retried on
429/5xx/network errors. On Azure `model` is a deployment name: a fine-tuned model answers only once deployed,
and a missing deployment is reported as such rather than as a bare 404.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import openai

from tunesmith.conversation import Conversation, Message
from tunesmith.generation.prompts import Prompt
from tunesmith.generation.requests import Generation
from tunesmith.providers.client import call_with_retries, is_azure, make_client
from tunesmith.providers.config import ProviderConfig, ProviderError

_DEPLOYMENT_MISSING = ("DeploymentNotFound", "model_not_found", "NotFound")


def generate_remote(
    provider: ProviderConfig | str | openai.OpenAI,
    model: str,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    patience_s: float = 300.0,
) -> list[Generation]:
    """One assistant reply per prompt, in the prompts' order (same signature and result as `tunesmith.generation.generate`)."""
    client = provider if isinstance(provider, openai.OpenAI) else make_client(provider)
    params: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    if stop:
        params["stop"] = list(stop)[:4]  # the API takes at most four stop sequences
    if seed is not None:
        params["seed"] = seed
    done = 0

    def one(prompt: Prompt) -> Generation:
        nonlocal done
        generation = _complete(client, model, prompt_messages(prompt), params, patience_s)
        done += 1
        if on_progress is not None:
            on_progress(done, len(prompts))
        return generation

    with ThreadPoolExecutor(max_workers=max(1, batch_size)) as pool:
        return list(pool.map(one, prompts))


def prompt_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """OpenAI message dicts for a prompt; a Conversation is continued from before its last assistant turn."""
    if isinstance(prompt, Conversation):
        messages = prompt.prompt_messages()
    else:
        messages = [m if isinstance(m, Message) else Message.from_openai(m) for m in prompt]
    out = []
    for m in messages:
        d = m.to_openai()
        d.pop("weight", None)  # a training-only field; chat completions reject it
        out.append(d)
    return out


def _complete(client: openai.OpenAI, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
              patience_s: float) -> Generation:
    started = time.perf_counter()
    try:
        response = call_with_retries(
            lambda: client.chat.completions.create(model=model, messages=messages, **params),
            what=f"chat completion with {model}", patience_s=patience_s)
    except openai.NotFoundError as e:
        raise ProviderError(_not_found_message(client, model, e)) from e
    choice = response.choices[0]
    usage = response.usage
    return Generation(
        text=choice.message.content or "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        finish_reason=choice.finish_reason or "stop",
        latency_s=time.perf_counter() - started,
    )


def _not_found_message(client: openai.OpenAI, model: str, error: openai.NotFoundError) -> str:
    code = getattr(error, "code", None)
    if is_azure(client) and (code in _DEPLOYMENT_MISSING or code is None):
        return (f"Azure has no deployment named {model!r} on {client.base_url} (DeploymentNotFound). On Azure a "
                "fine-tuned model answers only once it is deployed, which is a separate step: deploy it (see "
                "docs/providers.md, 'Azure: deploy the fine-tuned model'), then pass the deployment name as --model. "
                "A deployment made in the last few minutes may not answer yet.")
    return (f"the provider does not know the model {model!r} ({code or 'not found'}): check the id "
            "(`ft:…` as the job reported it) and that it was not deleted")
