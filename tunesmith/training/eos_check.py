"""End-of-training guard: does the trained model ever stop?

A model that never emits EOS (EOS outside the loss mask, pad = eos, a template whose end-of-turn token was never
trained) rambles until max_tokens in every deployment. At the end of each run the model answers a few training
prompts greedily; when none of the replies ends with EOS within twice the longest trained answer, the run gets a
`warn` event that the studio's job page shows with the others.
"""

from __future__ import annotations

from typing import Any, Callable

from tunesmith.training.render import TokenizedExample

N_PROMPTS = 3
MIN_NEW_TOKENS = 16
MAX_NEW_TOKENS = 256


def eos_check_prompts(examples: list[TokenizedExample], n: int = N_PROMPTS) -> tuple[list[list[int]], int]:
    """The first `n` examples cut just before their first trained token (the prompt the model answers), and a
    token budget: twice the longest trained run among them."""
    prompts, longest = [], 0
    for example in examples:
        first = next((i for i, t in enumerate(example.trained) if t), None)
        if first is None or first == 0:
            continue
        run = next((j for j in range(first, len(example.trained)) if not example.trained[j]), len(example.trained))
        prompts.append(example.ids[:first])
        longest = max(longest, run - first)
        if len(prompts) == n:
            break
    return prompts, min(MAX_NEW_TOKENS, max(MIN_NEW_TOKENS, 2 * longest))


def never_stops(model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int) -> bool:
    """True when greedy decoding emits EOS on none of the prompts within max_new_tokens."""
    from tunesmith.generation import generate

    import torch

    # a sharded or multi-process model cannot generate on one rank alone; the check runs in single-process runs
    if not prompts or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    was_training = model.training
    model.eval()
    try:
        out = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=0.0,
                       prefix_cache=False)
    finally:
        model.train(was_training)
    return all(g.finish_reason != "stop" for g in out)


def warn_if_never_stops(model: Any, tokenizer: Any, examples: list[TokenizedExample],
                        emit: Callable[..., None]) -> bool:
    """Run the check on the training examples; emit a `warn` event and return True when the model never stops."""
    prompts, budget = eos_check_prompts(examples)
    if not never_stops(model, tokenizer, prompts, budget):
        return False
    emit(f"The model never stopped: on {len(prompts)} training prompts it emitted no EOS "
         f"({tokenizer.eos_token!r}) within {budget} tokens. Check that the end-of-turn token carries loss "
         "(`tunesmith train --dry-run` shows the mask) and that pad is not EOS.",
         level="warn", data={"check": "eos", "prompts": len(prompts), "max_new_tokens": budget})
    return True
