"""Batched generation: many prompts through `model.generate` at once, left-padded, KV-cached, greedy by default.

Prompts are sorted by token length so each batch wastes little padding, generated batch by batch, and the
results are returned in the caller's order. A batch stops as soon as every row has hit EOS or a stop string;
stop strings are trimmed from the text, as the OpenAI API does.

When every prompt starts with the same long run of tokens (an evaluation's shared system prompt, a reference
document), that prefix is run through the model once and its KV cache is copied into every batch, so only each
prompt's own tail is prefilled: what vLLM and SGLang call prefix caching.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList
from transformers.cache_utils import DynamicLayer

from tunesmith.chat_templates import template_input
from tunesmith.conversation import Conversation, Message

Prompt = Conversation | Sequence[Message] | Sequence[dict[str, Any]] | list[int]  # token ids: used as they are

# below this a shared prefix costs more to copy into each batch than prefilling it again saves
PREFIX_CACHE_MIN_TOKENS = 32


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) | "length" (hit max_new_tokens)
    latency_s: float  # wall time of the batch this item was generated in: how long its caller waited


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    prefix_cache: bool = True,
) -> list[Generation]:
    """Generate one assistant reply per prompt (a Conversation, or a list of Messages / OpenAI message dicts).

    A Conversation that ends with an assistant turn (a test item) is continued from before that turn, so its
    reference answer is never shown; message lists are continued as they are. prefix_cache=False prefills
    every prompt in full even when they share a long prefix.
    """
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        from tunesmith.models import ensure_pad_token

        ensure_pad_token(tokenizer)  # pad = eos would make padded rows look finished and hide real EOS
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
    results: list[Generation | None] = [None] * len(encoded)
    if seed is not None:
        torch.manual_seed(seed)
    batch_size = max(1, batch_size)
    shared = cacheable_prefix_len(model, encoded) if prefix_cache else 0
    prefix = prefix_kv_cache(model, encoded[0][:shared]) if shared else None
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for i, gen in zip(batch, _generate_batch(model, tokenizer, [encoded[i] for i in batch], max_new_tokens,
                                                 list(stop or []), temperature, top_p, prefix)):
            results[i] = gen
        if on_progress:
            on_progress(min(start + batch_size, len(order)), len(order))
    return [r for r in results if r is not None]


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of the chat-templated prompt, ending with the assistant generation prompt."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return list(prompt)  # already encoded: the server's prompt with a forced start of the reply
    if isinstance(prompt, Conversation):
        # a test item ends with its reference answer, which must not be shown; a live chat ends with the user
        ends_with_answer = bool(prompt.messages) and prompt.messages[-1].role == "assistant"
        messages = prompt.prompt_messages() if ends_with_answer else prompt.messages
        tools = prompt.tools
    else:
        messages = [m if isinstance(m, Message) else Message.from_openai(m) for m in prompt]
        tools = None
    rendered = template_input(tokenizer, Conversation(list(messages), tools))  # as the model was trained
    ids = tokenizer.apply_chat_template(rendered.messages, tools=rendered.tools, add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    if hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding even when asked for ids
        ids = ids["input_ids"]
    return list(ids)


def common_prefix_len(encoded: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt shares (a single prompt shares all of its own)."""
    if not encoded:
        return 0
    first, n = encoded[0], min(len(ids) for ids in encoded)
    for ids in encoded[1:]:
        n = next((i for i in range(n) if ids[i] != first[i]), n)
    return n


def cacheable_prefix_len(model: Any, encoded: Sequence[Sequence[int]]) -> int:
    """Tokens of the shared prefix worth caching once, or 0 to prefill every prompt in full.

    At least one token of every prompt is left out of the prefix: generate must feed something to get logits.
    A model whose generation config asks for its own cache type (static, hybrid) cannot be handed one.
    """
    if len(encoded) < 2 or getattr(getattr(model, "generation_config", None), "cache_implementation", None):
        return 0
    n = min(common_prefix_len(encoded), min(len(ids) for ids in encoded) - 1)
    return n if n >= PREFIX_CACHE_MIN_TOKENS else 0


@dataclass
class PrefixCache:
    tokens: list[int]
    cache: DynamicCache  # batch 1; copied and widened per batch because generate appends to the cache it gets


def prefix_kv_cache(model: Any, prefix: list[int]) -> PrefixCache | None:
    """The KV cache of one forward pass over `prefix` (batch 1), or None when the model's cache cannot be reused.

    Only full-attention layers qualify: a sliding-window layer drops its oldest entries by count, which the
    padding after the prefix would shift, and a recurrent layer has no per-token entries to share.
    """
    device = next(model.parameters()).device
    with torch.inference_mode():
        # logits_to_keep=1: the prefix's logits are never used, and over a long prefix they dwarf the cache
        out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None)
    if not isinstance(cache, DynamicCache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    return PrefixCache(list(prefix), cache)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a turn: the tokenizer's EOS plus whatever the generation config lists."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


class _StopOnStrings(StoppingCriteria):
    """Marks a row finished once its generated text contains any stop string."""

    def __init__(self, tokenizer: Any, stop: list[str], prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, stop, prompt_len
        # decoding only a tail keeps the check cheap; a stop string never spans more tokens than characters
        self.tail = max(len(s) for s in stop) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        tails = self.tokenizer.batch_decode(input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.tail):])
        return torch.tensor([any(s in t for s in self.stop) for t in tails], device=input_ids.device)


def padded_batch(batch: list[list[int]], pad: int, prefix_len: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with each row's padding right after the first prefix_len tokens.

    prefix_len 0 is plain left padding. With a cached prefix the padding goes in the middle, so the prefix stays
    at positions 0..prefix_len-1 in every row, where its cache was computed; generate numbers the tokens after
    the padding from the attention mask's running count, so each tail continues at position prefix_len.
    """
    width = max(len(ids) for ids in batch)
    rows = [ids[:prefix_len] + [pad] * (width - len(ids)) + ids[prefix_len:] for ids in batch]
    masks = [[1] * prefix_len + [0] * (width - len(ids)) + [1] * (len(ids) - prefix_len) for ids in batch]
    return torch.tensor(rows), torch.tensor(masks)


def _generate_batch(model: Any, tokenizer: Any, batch: list[list[int]], max_new_tokens: int, stop: list[str],
                    temperature: float, top_p: float, prefix: PrefixCache | None = None) -> list[Generation]:
    width = max(len(ids) for ids in batch)
    pad = tokenizer.pad_token_id
    input_ids, attention_mask = padded_batch(batch, pad, len(prefix.tokens) if prefix else 0)
    device = next(model.parameters()).device
    eos = eos_token_ids(model, tokenizer)
    sampling = temperature > 0
    kwargs: dict[str, Any] = dict(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        pad_token_id=pad,
        eos_token_id=eos,
        use_cache=True,
    )
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # silence "temperature is set but do_sample=False" from models whose generation config sets them
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop:
        kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(tokenizer, stop, width)])
    started = time.perf_counter()
    with torch.inference_mode():
        if prefix:  # generate sees the cache covers the first tokens and prefills only the rest
            cache = copy.deepcopy(prefix.cache)
            cache.batch_repeat_interleave(len(batch))
            kwargs["cache"] = cache
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **kwargs)
    latency = time.perf_counter() - started
    return [_finish(tokenizer, ids, row[width:].tolist(), eos, pad, stop, latency)
            for ids, row in zip(batch, out)]


def _finish(tokenizer: Any, prompt: list[int], new: list[int], eos: list[int], pad: int, stop: list[str],
            latency: float) -> Generation:
    """Cut the row at its first EOS, then at its first stop string; count only the tokens that were kept."""
    cut = next((i for i, t in enumerate(new) if t in eos), None)
    finish = "stop" if cut is not None else "length"
    tokens = new[:cut] if cut is not None else [t for t in new if t != pad]
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    hits = [text.find(s) for s in stop if s in text]
    if hits:
        text, finish = text[: min(hits)], "stop"
        tokens = tokenizer.encode(text, add_special_tokens=False) if text else []
    completion = len(tokens) + (1 if cut is not None and not hits else 0)  # the EOS token was generated too
    return Generation(text, len(prompt), completion, finish, latency)
