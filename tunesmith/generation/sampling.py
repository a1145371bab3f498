"""Per-row sampling settings and the choice of each row's next token from its logits.

Greedy rows take the argmax; sampled rows draw from their own `torch.Generator`, seeded per request, so a seeded
request gives the same reply whatever else shares its batch (OpenAI's `seed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

SEED_MODULUS = 2**64  # torch.Generator takes seeds in [0, 2^64)


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: int | None = None  # how many alternatives per token to report; None: no log-probabilities
    ignore_eos: bool = False  # run to max_tokens past end-of-sequence (vLLM's name; benchmarks use it)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # (token id, logprob), most likely first


def row_generator(params: SamplingParams) -> torch.Generator | None:
    """The row's own random stream: seeded when the request gave a seed, else from torch's entropy."""
    if params.greedy:
        return None
    generator = torch.Generator(device="cpu")
    generator.manual_seed(params.seed % SEED_MODULUS if params.seed is not None else torch.seed())
    return generator


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """The next token for one row (logits of shape [vocab], float32 on the CPU)."""
    if params.greedy or generator is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest set whose mass reaches top_p (the most likely token always stays)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= params.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


def token_logprob(logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """The chosen token's log-probability under the model (before temperature, as OpenAI reports) and the top ones."""
    logp = torch.log_softmax(logits, dim=-1)
    values, ids = torch.topk(logp, max(0, min(top, 20))) if top else (torch.empty(0), torch.empty(0, dtype=torch.long))
    return TokenLogprob(token, float(logp[token]), [(int(i), float(v)) for i, v in zip(ids, values)])
