"""`POST /chat/completions` (and Azure's `/deployments/{name}/chat/completions`): non-streaming and SSE.

With `tools`, they are rendered into the prompt as in training, and a reply in the template's tool-call format
comes back as `message.tool_calls` (`delta.tool_calls` when streaming); see tool_calls.py.

`tool_choice`: "none" leaves the reply as text; "auto" (the default) lets the model choose; "required" and
`{"type": "function", "function": {"name": ...}}` force the reply to start inside a call (through the name's
arguments key for a named function), in the format the model's chat template writes. The forced opening counts
as prompt tokens, not completion tokens: the model read it, it did not generate it (OpenAI bills generated tokens
as completion). A model that still does not finish a parseable call (a weak one, or max_tokens cut it short)
gets its reply back as content, forced opening included, with the generation's own finish_reason. A template
whose call format tool_calls.py cannot read (neither Hermes nor Llama 3.1 JSON) is not forced.

Every request (streaming or not, seeded or not, n choices as n rows) goes to its base model's generation engine
(tunesmith/generation): it joins the running batch at the next decode step and leaves it when it ends, fine-tuned
models over one base mixed in a step. A seeded row samples from its own generator, so its reply does not depend
on what else runs. `logprobs` / `top_logprobs` are answered for non-streaming requests. A row the model fails on
(non-finite logits from corrupt weights, say) fails that request alone with a 500 naming the cause.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Generator, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunesmith.catalog import find_model_spec
from tunesmith.conversation import Conversation, Message
from tunesmith.jobs.store import new_id
from tunesmith.server.errors import OpenAIError
from tunesmith.generation import (ContextLengthError, Generation, GenerationError, SamplingParams, TokenLogprob,
                                  encode_prompt)
from tunesmith.server.inference import ModelTarget
from tunesmith.server.models_api import resolve_model
from tunesmith.server.settings import ServerState, server_state
from tunesmith.server.tool_calls import (ToolCallStream, call_format, forced_opening, ids_with_opening,
                                        parse_tool_calls, tool_names)
from tunesmith.server.validation import check_messages, check_prompt_size

router = APIRouter(tags=["chat"])
azure_router = APIRouter(tags=["azure"])

DEFAULT_MAX_TOKENS = 512  # a CPU-friendly default when the request names none


# strict: `"stream": "yes"` or `"n": "2"` is an error, not a guess; no NaN or Infinity in any float
STRICT = ConfigDict(strict=True, allow_inf_nan=False)
SEED_RANGE = (-(2**63), 2**63 - 1)  # OpenAI's: what a 64-bit generator seed holds


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(**STRICT, extra="allow")  # logprobs, user, metadata, … are accepted and ignored
    model: str | None = None  # Azure puts the deployment in the path instead
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None  # "none" | "auto" | "required" | a named function

    @property
    def parses_tool_calls(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


@router.post("/chat/completions")
def chat_completions(request: Request, body: ChatRequest) -> Any:
    if not body.model:
        raise OpenAIError(400, "you must provide a model parameter", param="model", code="missing_required_parameter")
    return _complete(request, body, body.model)


@azure_router.post("/deployments/{deployment:path}/chat/completions")
def azure_chat_completions(request: Request, deployment: str, body: ChatRequest) -> Any:
    return _complete(request, body, deployment)


@dataclass(frozen=True)
class ForcedCall:
    """`tool_choice` that the reply must obey: a call to `name`, or to any offered tool when name is None."""

    name: str | None


def _forced_call(body: ChatRequest) -> ForcedCall | None:
    """What `tool_choice` forces, or None when the model may answer freely; a 400 for a choice it cannot mean."""
    choice = body.tool_choice
    if choice is None or choice in ("none", "auto"):
        return None
    if isinstance(choice, str) and choice != "required":
        raise OpenAIError(400, f"Invalid value for 'tool_choice': {choice!r}; expected 'none', 'auto', 'required' "
                               "or {'type': 'function', 'function': {'name': ...}}", param="tool_choice",
                          code="invalid_value")
    if not tool_names(body.tools):
        raise OpenAIError(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                               "specified.", param="tool_choice", code="invalid_value")
    if isinstance(choice, str):
        return ForcedCall(None)  # "required"
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise OpenAIError(400, "Invalid value for 'tool_choice': an object must be {'type': 'function', "
                               "'function': {'name': ...}}", param="tool_choice", code="invalid_value")
    if name not in tool_names(body.tools):
        raise OpenAIError(400, f"Invalid value for 'tool_choice': function {name!r} is not among the request's "
                               f"tools ({', '.join(sorted(tool_names(body.tools)))}).", param="tool_choice",
                          code="invalid_value")
    return ForcedCall(name)


def _forced_prompt(tokenizer: Any, prompt_ids: list[int], forced: ForcedCall | None) -> tuple[list[int], str]:
    """(prompt ids, forced opening): the prompt followed by the start of a call the reply must continue.

    No forcing, or a template whose call format cannot be read back: the prompt as it is and no opening.
    """
    fmt = call_format(tokenizer) if forced is not None else None
    if forced is None or fmt is None:
        return prompt_ids, ""
    opening = forced_opening(fmt, forced.name)
    return ids_with_opening(tokenizer, prompt_ids, opening), opening


def _complete(request: Request, body: ChatRequest, model: str) -> Any:
    state = server_state(request)
    check_messages(body.messages)
    forced = _forced_call(body)
    target = resolve_model(state, model)
    spec = find_model_spec(target.base)
    check_prompt_size(body.messages, body.tools, spec.context_length if spec is not None else None)
    messages = _prompt([_plain_message(m, i) for i, m in enumerate(body.messages)], body.tools)
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > 4:
        raise OpenAIError(400, "stop holds at most 4 sequences", param="stop", code="invalid_value")
    params = SamplingParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p, stop=stops, seed=body.seed,
    )
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = _sse(state, target, messages, body, params, include_usage, forced)
        return StreamingResponse(_until_disconnected(request, events),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return _completion(state, target, messages, body, params, forced)


def _completion(state: ServerState, target: ModelTarget, messages: Any, body: ChatRequest,
                params: SamplingParams, forced: ForcedCall | None) -> dict[str, Any]:
    tokenizer = state.pool.tokenizer(target)
    prompt_ids, opening = _forced_prompt(tokenizer, encode_prompt(tokenizer, messages), forced)
    params.max_tokens = _checked_max_tokens(target, len(prompt_ids), params.max_tokens)
    params.logprobs = _logprobs_asked(body)
    completions = [_submit(state, target, prompt_ids, _choice_params(params, i)) for i in range(body.n)]
    generations = [_wait(c) for c in completions]
    choices = [_choice(i, opening + g.text, g.finish_reason, body, _logprobs(tokenizer, g))
               for i, g in enumerate(generations)]
    completion_tokens = sum(g.completion_tokens for g in generations)
    return {"id": new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": target.name, "choices": choices, "system_fingerprint": None,
            "usage": _usage(len(prompt_ids), completion_tokens)}


def _choice_params(params: SamplingParams, index: int) -> SamplingParams:
    """Choice `index`'s settings: with a seed, choice i samples from seed + i (n differing samples, reproducibly)."""
    seed = None if params.seed is None else params.seed + index
    return SamplingParams(params.max_tokens, params.temperature, params.top_p, list(params.stop), seed,
                          params.logprobs)


def _submit(state: ServerState, target: ModelTarget, prompt_ids: list[int], params: SamplingParams,
            stream: bool = False) -> Any:
    try:
        return state.pool.submit(target, prompt_ids, params, stream=stream)
    except ContextLengthError as e:
        raise OpenAIError(400, str(e), param="messages", code="context_length_exceeded") from e


def _wait(completion: Any) -> Generation:
    try:
        return completion.result()
    except GenerationError as e:
        raise OpenAIError(500, f"The model failed on this request: {e}", code="model_error") from e


def _logprobs_asked(body: ChatRequest) -> int | None:
    """How many alternatives per token the request asks for (OpenAI's `logprobs` + `top_logprobs`), or None."""
    if not getattr(body, "logprobs", None):
        return None
    top = getattr(body, "top_logprobs", None) or 0
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
        raise OpenAIError(400, "top_logprobs must be an integer from 0 to 20", param="top_logprobs",
                          code="invalid_value")
    return top


def _logprobs(tokenizer: Any, generation: Generation) -> dict[str, Any] | None:
    """OpenAI's `choices[].logprobs`: each generated token with its log-probability and the most likely ones."""
    if generation.logprobs is None:
        return None

    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def token(t: TokenLogprob) -> dict[str, Any]:
        return {**entry(t.token_id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in t.top]}

    return {"content": [token(t) for t in generation.logprobs[: len(generation.token_ids)]], "refusal": None}


def _choice(index: int, text: str, finish_reason: str, body: ChatRequest,
            logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    content, calls = parse_tool_calls(text, body.tools) if body.parses_tool_calls else (text, [])
    message = {"role": "assistant", "content": content, "refusal": None, "annotations": [], "tool_calls": calls or None}
    return {"index": index, "message": message, "logprobs": logprobs,
            "finish_reason": "tool_calls" if calls else finish_reason}


def _sse(state: ServerState, target: ModelTarget, messages: Any, body: ChatRequest,
         params: SamplingParams, include_usage: bool, forced: ForcedCall | None) -> Iterator[str]:
    meta = {"id": new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": target.name, "system_fingerprint": None}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return "data: " + json.dumps({**meta, "choices": choices, **extra}) + "\n\n"

    def delta(index: int, d: dict[str, Any], finish: str | None = None) -> str:
        usage = {"usage": None} if include_usage else {}
        return chunk([{"index": index, "delta": d, "logprobs": None, "finish_reason": finish}], **usage)

    def choice_events(index: int, completion: Any, opening: str) -> Iterator[str]:
        # with tools, the reply may turn out to be only tool calls: OpenAI then sends content null
        yield delta(index, {"role": "assistant", "content": None if body.parses_tool_calls else ""})
        held = ToolCallStream(body.tools if body.parses_tool_calls else None)
        held.feed(opening)  # held back like any call's start: it goes out as delta.tool_calls, or as text
        pieces = completion.stream()
        try:
            for text in pieces:
                if ready := held.feed(text):
                    yield delta(index, {"content": ready})
        finally:
            pieces.close()  # a client that left cancels its row at once
        generation = _wait(completion)
        rest, calls = held.finish()
        if rest:
            yield delta(index, {"content": rest})
        for d in _tool_call_deltas(calls):
            yield delta(index, d)
        yield delta(index, {}, "tool_calls" if calls else generation.finish_reason)
        nonlocal completion_tokens
        completion_tokens += generation.completion_tokens

    completion_tokens = 0
    try:
        tokenizer = state.pool.tokenizer(target)
        prompt_ids, opening = _forced_prompt(tokenizer, encode_prompt(tokenizer, messages), forced)
        params.max_tokens = _checked_max_tokens(target, len(prompt_ids), params.max_tokens)
        for index in range(body.n):
            completion = _submit(state, target, prompt_ids, _choice_params(params, index), stream=True)
            yield from choice_events(index, completion, opening)
        if include_usage:
            yield chunk([], usage=_usage(len(prompt_ids), completion_tokens))
    except OpenAIError as e:  # headers are gone: the SDK reads an error event and raises APIError
        yield "data: " + json.dumps(e.body()) + "\n\n"
    except Exception as e:
        yield "data: " + json.dumps(OpenAIError(500, f"{type(e).__name__}: {e}").body()) + "\n\n"
    yield "data: [DONE]\n\n"


async def _until_disconnected(request: Request, events: Generator[str, None, None]) -> AsyncIterator[str]:
    """Send `events` until the client goes away, then close them: the generator's `with` gives the model back.

    Left to Starlette, an abandoned stream stays suspended (holding the model pool, so every later request
    waits) or generates on to max_tokens for nobody.
    """
    try:
        async for event in iterate_in_threadpool(events):  # generation runs in a worker thread, as before
            if await request.is_disconnected():
                break
            yield event
    finally:
        events.close()


def _tool_call_deltas(calls: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """OpenAI's stream shape: id, type and name once per call, then its arguments (the SDK joins by index)."""
    for i, call in enumerate(calls):
        function = call["function"]
        yield {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                               "function": {"name": function["name"], "arguments": ""}}]}
        yield {"tool_calls": [{"index": i, "function": {"arguments": function["arguments"]}}]}


def _checked_max_tokens(target: ModelTarget, prompt_tokens: int, max_tokens: int) -> int:
    spec = find_model_spec(target.base)
    context = spec.context_length if spec is not None else None
    if context is None:
        return max_tokens
    if prompt_tokens >= context:
        raise OpenAIError(400, f"This model's maximum context length is {context} tokens; the messages have "
                               f"{prompt_tokens}.", param="messages", code="context_length_exceeded")
    return min(max_tokens, context - prompt_tokens)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


def _prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Any:
    """What the chat template renders: the messages, with the request's tools when it has some (as in training)."""
    if not tools:
        return messages
    try:
        return Conversation([Message.from_openai(m) for m in messages], tools)
    except (KeyError, TypeError) as e:  # a tool_calls entry without function.name
        raise OpenAIError(400, f"messages: each tool_calls entry needs function.name ({e})", param="messages",
                          code="invalid_value") from e


def _plain_message(message: dict[str, Any], index: int) -> dict[str, Any]:
    """An OpenAI message with text-part content flattened to a string (the models served here read text)."""
    role = message.get("role")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise OpenAIError(400, f"messages[{index}].role must be system, user, assistant or tool; got {role!r}",
                          param=f"messages.[{index}].role", code="invalid_value")
    content = message.get("content")
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(content):
            raise OpenAIError(400, f"messages[{index}].content: only text parts are supported here",
                              param=f"messages.[{index}].content", code="invalid_value")
        content = "".join(texts)
    out = {k: v for k, v in message.items() if k in ("role", "name", "tool_calls", "tool_call_id")}
    out["role"] = "system" if role == "developer" else role
    out["content"] = content
    return out
