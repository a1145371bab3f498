"""The one place tokens are generated: eval, baselines, judge graders, the server and the playground all ask it.

    from tunesmith.generation import generate
    generations = generate(model, tokenizer, prompts, max_new_tokens=64, stop=["\\n\\n"])

`generate` answers a list of prompts with a throw-away `Engine` (engine.py) run in the caller's thread; the
server keeps one `Engine` per loaded base model running in a thread of its own (server/inference.py).
`remote.py` answers through a provider's API with the same result type, `vllm.py` hands generation to vLLM.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tunesmith.generation.engine import BASE_MODEL, DEFAULT_MAX_BATCH, Engine
from tunesmith.generation.prefixes import PREFIX_CACHE_MIN_TOKENS
from tunesmith.generation.prompts import Prompt, common_prefix_len, encode_prompt, eos_token_ids
from tunesmith.generation.requests import Completion, ContextLengthError, Generation, GenerationError
from tunesmith.generation.sampling import SamplingParams, TokenLogprob
from tunesmith.generation.threads import configure_threads

__all__ = ["BASE_MODEL", "Completion", "ContextLengthError", "Engine", "Generation", "GenerationError", "PREFIX_CACHE_MIN_TOKENS",
           "Prompt", "SamplingParams", "TokenLogprob", "common_prefix_len", "configure_threads", "encode_prompt",
           "eos_token_ids", "generate", "shared_prefix_len"]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = DEFAULT_MAX_BATCH,
    seed: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    prefix_cache: bool = True,
    logprobs: int | None = None,
) -> list[Generation]:
    """One assistant reply per prompt (a Conversation, a list of Messages / OpenAI message dicts, or token ids).

    `batch_size` is how many rows decode together; a finished row's slot is refilled at once. With a `seed`,
    prompt i samples from seed + i, so the whole call is reproducible. prefix_cache=False prefills every prompt
    in full even when they share a long beginning.
    """
    configure_threads()
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    engine = Engine(model, tokenizer, max_batch=batch_size)
    shared = shared_prefix_len(encoded) if prefix_cache else 0
    if shared:
        engine.remember_prefix(encoded[0][:shared])
    params = [SamplingParams(max_new_tokens, temperature, top_p, list(stop or []),
                             None if seed is None else seed + i, logprobs) for i in range(len(encoded))]
    return engine.generate(encoded, params, on_progress=on_progress)


def shared_prefix_len(encoded: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, when worth caching once (one token of each is always left to prefill)."""
    if len(encoded) < 2:
        return 0
    n = min(common_prefix_len(encoded), min(len(ids) for ids in encoded) - 1)
    return n if n >= PREFIX_CACHE_MIN_TOKENS else 0
