"""Does the deployed copy answer like the trained one? Greedy replies from (a) the trainer's PEFT model, (b) the
merged model and (c) the exported GGUF run by a GGUF runtime, compared token by token, plus whether each reply
ended with the trained EOS. Also the end-of-training guard: a model that never emits EOS is flagged.

(a) and (b) generate through `tunesmith.generation.generate`, the one greedy decoder for transformers
models. (c) runs in llama.cpp through llama-cpp-python when it is installed; otherwise transformers dequantises
the GGUF (`gguf_file=`) and the same `generate` decodes it; the report says which runtime was used.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tunesmith.conversation import Conversation
from tunesmith.generation import encode_prompt, generate

DEFAULT_PROMPTS = 5
DEFAULT_MAX_NEW_TOKENS = 64


@dataclass
class PromptParity:
    prompt: str  # the last user message, for the report
    outputs: dict[str, str]  # variant ("peft", "merged", "gguf") -> reply text
    identical: bool
    first_difference: dict[str, Any] | None  # {"variant", "index", "expected", "got"} against "peft"
    ended_with_eos: dict[str, bool]


@dataclass
class ParityReport:
    runtime: str  # what ran the GGUF
    quantize: str
    prompts: list[PromptParity] = field(default_factory=list)
    logprob_gap: float | None = None  # mean |log p_peft - log p_gguf| over the PEFT reply's tokens

    @property
    def agreement(self) -> float:
        return sum(p.identical for p in self.prompts) / max(1, len(self.prompts))

    @property
    def all_ended_with_eos(self) -> bool:
        return all(all(p.ended_with_eos.values()) for p in self.prompts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement, "all_ended_with_eos": self.all_ended_with_eos}


def check_parity(run_dir: Path | str, gguf: Path | str, *, quantize: str = "f16",
                 prompts: Sequence[Conversation] | None = None, n: int = DEFAULT_PROMPTS,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> ParityReport:
    """Compare greedy replies of the run's PEFT model, its merged model and the exported GGUF."""
    from tunesmith.models import load_model

    prompts = list(prompts) if prompts is not None else run_prompts(Path(run_dir), n)
    trained = load_model(str(run_dir))
    tokenizer = trained.tokenizer
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    eos = _eos_ids(trained.model, tokenizer)
    replies = {"peft": _transformers_replies(trained.model, tokenizer, encoded, max_new_tokens)}
    merged = load_model(str(run_dir)).model
    if trained.adapter_dir is not None:
        merged = merged.merge_and_unload()
    replies["merged"] = _transformers_replies(merged, tokenizer, encoded, max_new_tokens)
    runtime, replies["gguf"], gguf_logprobs = _gguf_replies(Path(gguf), tokenizer, encoded, max_new_tokens, eos,
                                                            replies["peft"])
    report = ParityReport(runtime, quantize)
    for i, prompt in enumerate(prompts):
        ids = {name: r[i] for name, r in replies.items()}
        report.prompts.append(PromptParity(
            prompt=_last_user_text(prompt),
            outputs={name: tokenizer.decode(_strip_eos(t, eos), skip_special_tokens=True) for name, t in ids.items()},
            identical=all(t == ids["peft"] for t in ids.values()),
            first_difference=_first_difference(ids, tokenizer),
            ended_with_eos={name: bool(t) and t[-1] in eos for name, t in ids.items()},
        ))
    if quantize != "f16" and gguf_logprobs is not None:
        report.logprob_gap = _logprob_gap(trained.model, encoded, replies["peft"], gguf_logprobs)
    return report


def run_prompts(run_dir: Path, n: int) -> list[Conversation]:
    """The first `n` conversations of the run's validation file (its training file when it had none)."""
    from tunesmith.data.formats import read_conversations

    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    source = config.get("validation_file") or config.get("training_file")
    if not source or not Path(source).is_file():
        raise FileNotFoundError(f"{run_dir}/config.json names no readable validation or training file; "
                                "give prompts with --prompts FILE")
    return read_conversations(Path(source))[:n]


def _transformers_replies(model: Any, tokenizer: Any, encoded: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy replies as token ids (EOS appended when the reply stopped on it), through the generation engine."""
    out = generate(model, tokenizer, encoded, max_new_tokens=max_new_tokens, temperature=0.0, prefix_cache=False)
    return [_canonical(tokenizer, g.text, g.finish_reason == "stop") for g in out]


def _canonical(tokenizer: Any, text: str, ended: bool) -> list[int]:
    """A reply as the run's tokenizer encodes its text, plus EOS when it stopped on one. the engine returns
    text, so every runtime's reply goes through this one encoding before tokens are compared (two runs of
    newlines are one token or two depending on who produced them, never on what the user sees)."""
    return tokenizer.encode(text, add_special_tokens=False) + ([tokenizer.eos_token_id] if ended else [])


def _gguf_replies(gguf: Path, tokenizer: Any, encoded: list[list[int]], max_new_tokens: int, eos: list[int],
                  reference: list[list[int]]) -> tuple[str, list[list[int]], list[list[float]] | None]:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return _gguf_replies_transformers(gguf, tokenizer, encoded, max_new_tokens)
    return _gguf_replies_llama_cpp(gguf, tokenizer, encoded, max_new_tokens, eos, reference)


def _gguf_replies_llama_cpp(gguf: Path, tokenizer: Any, encoded: list[list[int]], max_new_tokens: int,
                            eos: list[int], reference: list[list[int]]
                            ) -> tuple[str, list[list[int]], list[list[float]]]:
    import llama_cpp
    import numpy as np

    longest = max(len(p) for p in encoded) + max_new_tokens + max(len(r) for r in reference) + 8
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=longest, logits_all=True, verbose=False, seed=0)
    replies, logprobs = [], []
    for prompt, ref in zip(encoded, reference):
        reply: list[int] = []
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            reply.append(int(token))
            if token in eos or len(reply) >= max_new_tokens:
                break
        ended = bool(reply) and reply[-1] in eos
        text = tokenizer.decode(_strip_eos(reply, eos), skip_special_tokens=True)
        replies.append(_canonical(tokenizer, text, ended))
        llm.reset()  # teacher-force the PEFT model's reply to compare log-probs token by token
        llm.eval(prompt + ref)
        scores = np.asarray(llm.scores[len(prompt) - 1: len(prompt) - 1 + len(ref)], dtype=np.float64)
        log_z = np.log(np.exp(scores - scores.max(axis=1, keepdims=True)).sum(axis=1)) + scores.max(axis=1)
        logprobs.append([float(scores[j, t] - log_z[j]) for j, t in enumerate(ref)])
    return f"llama.cpp (llama-cpp-python {llama_cpp.__version__})", replies, logprobs


def _gguf_replies_transformers(gguf: Path, tokenizer: Any, encoded: list[list[int]],
                               max_new_tokens: int) -> tuple[str, list[list[int]], list[list[float]] | None]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    replies = _transformers_replies(model, tokenizer, encoded, max_new_tokens)
    return "transformers (gguf_file=, dequantised; install llama-cpp-python to run it in llama.cpp)", replies, None


def _logprob_gap(model: Any, encoded: list[list[int]], reference: list[list[int]],
                 gguf_logprobs: list[list[float]]) -> float:
    import torch

    gaps: list[float] = []
    with torch.no_grad():
        for prompt, ref, theirs in zip(encoded, reference, gguf_logprobs):
            if not ref:
                continue
            ids = torch.tensor([prompt + ref])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1: len(prompt) - 1 + len(ref)].float()
            ours = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ref)[:, None])[:, 0].tolist()
            gaps += [abs(a - b) for a, b in zip(ours, theirs)]
    return sum(gaps) / len(gaps) if gaps else math.nan


def _first_difference(ids: dict[str, list[int]], tokenizer: Any) -> dict[str, Any] | None:
    ref = ids["peft"]
    for name, got in ids.items():
        if got == ref:
            continue
        k = next((j for j, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        token: Callable[[list[int]], str | None] = lambda t: tokenizer.decode([t[k]]) if k < len(t) else None
        return {"variant": name, "index": k, "expected": token(ref), "got": token(got)}
    return None


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    from tunesmith.generation import eos_token_ids

    return eos_token_ids(model, tokenizer)


def _strip_eos(ids: list[int], eos: list[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] in eos else ids


def _last_user_text(prompt: Conversation) -> str:
    users = [m.content for m in prompt.messages if m.role == "user" and isinstance(m.content, str)]
    return users[-1] if users else ""
