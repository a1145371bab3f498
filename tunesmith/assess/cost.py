"""What fine-tuning costs and what it saves: training, hosting, prompt savings, break-even.

Every figure here is an estimate. Provider prices come from a dated table anyone can override with a flag;
local training time comes from measured throughput (tokens/s for a model on a device), never from a guess
without a source.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.catalog import ModelSpec, get_model_spec
from tunesmith.conversation import Conversation
from tunesmith.hparams import default_n_epochs
from tunesmith.openai_tokens import openai_token_count

HOURS_PER_MONTH = 24 * 30  # Azure's cost-management examples bill a month as 30 × 24 hours
DAYS_PER_MONTH = 30

# --- Provider prices ----------------------------------------------------------------------------------------
# US$ per 1M tokens, and per hour of hosting. Sources, as published:
# - training and inference: OpenAI API pricing page (openai.com/api/pricing), "Fine-tuning models" and legacy
#   model tables; unchanged since gpt-3.5-turbo-0125 came out (2024-01-25). Azure's regional training list price
#   differs; Azure global training is 10-30% cheaper and developer-tier training 50% cheaper than that.
# - hosting: Azure "Cost management for fine-tuning" (learn.microsoft.com, .../openai/how-to/
#   fine-tuning-cost-management, ms.date 2026-02-11): $1.70/hour for a Standard or Global Standard deployment
#   of a fine-tuned model, billed whether or not it is called. OpenAI itself charges no hosting fee.
# gpt-4-0613 fine-tuning was only offered as experimental access with no list price: pass the price you have.
# The models Foundry fine-tunes today (gpt-4o-mini, gpt-4o, gpt-4.1, -mini, -nano, o4-mini) and its training tiers
# (Standard = regional, Global, Developer) have no per-token price here: no official price page could be read
# while writing this (2026-12-03), and third-party copies disagree. Pass --price-per-1m-training-tokens from
# your price sheet; the tiers' relation above (Global 10-30% under Standard, Developer 50% under Global) is
# Azure's cost-management page's.
PRICES_AS_OF = "2026-02-11"
AZURE_HOSTING_PER_HOUR = 1.70


@dataclass(frozen=True)
class ProviderPrice:
    training_per_1m: float
    base_input_per_1m: float  # the base model, used with the long (few-shot / reference) prompt
    base_output_per_1m: float
    tuned_input_per_1m: float  # the fine-tuned model: dearer per token than its base
    tuned_output_per_1m: float
    hosting_per_hour: float = AZURE_HOSTING_PER_HOUR


PROVIDER_PRICES: dict[str, ProviderPrice] = {
    "babbage-002": ProviderPrice(0.40, 0.40, 0.40, 1.60, 1.60),
    "davinci-002": ProviderPrice(6.00, 2.00, 2.00, 12.00, 12.00),
    "gpt-35-turbo-0613": ProviderPrice(8.00, 1.50, 2.00, 3.00, 6.00),
    "gpt-35-turbo-1106": ProviderPrice(8.00, 1.00, 2.00, 3.00, 6.00),
    "gpt-35-turbo-0125": ProviderPrice(8.00, 0.50, 1.50, 3.00, 6.00),
}
BASE_INPUT_PRICES_ONLY: dict[str, tuple[float, float]] = {"gpt-4-0613": (30.00, 60.00)}  # in, out per 1M


# --- Measured training throughput -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Throughput:
    model: str  # catalog id
    device: str
    method: str  # lora | qlora | full
    tokens_per_s: float  # trained tokens per second
    source: str


MEASURED_THROUGHPUT: tuple[Throughput, ...] = (
    # torchtune README, "Memory and training speed" table: bs=2, packed to 2048 tokens, compile=True,
    # tokens/s over one full epoch.
    Throughput("Llama-3.1-8B-Instruct", "1x RTX 4090", "lora", 3083, "torchtune README (bs 2, packed 2048, compiled)"),
    Throughput("Llama-3.1-8B-Instruct", "1x A6000", "lora", 4699, "torchtune README (bs 2, packed 2048, compiled)"),
    Throughput("Llama-3.1-8B-Instruct", "1x RTX 4090", "qlora", 2413, "torchtune README (bs 2, packed 2048, compiled)"),
    Throughput("Llama-3.1-8B-Instruct", "1x RTX 4090", "full", 1650, "torchtune README (bs 2, packed 2048, compiled)"),
    # Measured 2026-11-27 on the project's 2-core CPU dev machine (shared, so a floor): PEFT LoRA r=16 on all
    # linear layers, AdamW, fp32, batch 4 x 256 tokens, mean of 5 steps after one warm-up step.
    Throughput("smollm2-135m-instruct", "CPU, 2 threads", "lora", 250, "measured on the dev machine, 2026-11-27"),
)


def read_benchmark_throughputs(path: Path) -> list[Throughput]:
    """Training throughputs from markdown tables in docs/benchmarks.md.

    A table counts when its header has a `model` column, a `device` column and a column whose name contains
    "train" and "tokens/s" (e.g. `train tokens/s`); an optional `method` column defaults to lora.
    """
    path = Path(path)
    if not path.is_file():
        return []
    out: list[Throughput] = []
    header: list[str] | None = None
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = [c.lower() for c in cells]
        elif not all(set(c) <= set("-: ") for c in cells):
            row = dict(zip(header, cells))
            speed_col = next((h for h in header if "train" in h and "tokens/s" in h), None)
            if "model" in row and "device" in row and speed_col:
                speed = _number(row[speed_col])
                if speed:
                    out.append(Throughput(row["model"].strip("` "), row["device"], row.get("method", "lora").lower(),
                                          speed, f"{path.name} line {line_no}"))
    return out


def find_throughput(model: str, *, method: str = "lora", extra: list[Throughput] | None = None) -> tuple[Throughput, str] | None:
    """The measured throughput for `model` (and how it was obtained); scaled by parameter count from the
    closest measured model when there is none for this one, since training compute grows with parameters."""
    spec = get_model_spec(model)
    table = list(extra or []) + list(MEASURED_THROUGHPUT)
    same = [t for t in table if t.model == spec.id]
    exact = [t for t in same if t.method == method] or same
    if exact:
        return exact[0], "measured"
    params = params_billions(spec)
    candidates = [t for t in table if t.method == method and params_billions(get_model_spec(t.model))]
    if params is None or not candidates:
        return None
    ref = min(candidates, key=lambda t: abs(math.log(params_billions(get_model_spec(t.model)) / params)))
    scaled = ref.tokens_per_s * params_billions(get_model_spec(ref.model)) / params
    return (Throughput(spec.id, ref.device, method, round(scaled), ref.source),
            f"scaled from {ref.model} by parameter count ({params:g}B vs {params_billions(get_model_spec(ref.model)):g}B)")


# --- Token counting -------------------------------------------------------------------------------------------
def count_billing_tokens(conversations: list[Conversation], model: str) -> tuple[list[int], str]:
    """Tokens per example as the trainer sees them, capped at the model's context (longer ones are truncated),
    and a note of how they were counted."""
    spec = get_model_spec(model)
    counts, how = _count_with_model_tokenizer(conversations, spec) if spec.local else (None, "")
    if counts is None:
        counts = [openai_token_count(c) for c in conversations]
        how = "cl100k_base with the OpenAI cookbook's per-message overhead" + (
            " (the model's own tokenizer was not available offline: an approximation)" if spec.local else "")
    return [min(n, spec.context_length) for n in counts], how


def _count_with_model_tokenizer(conversations: list[Conversation], spec: ModelSpec) -> tuple[list[int] | None, str]:
    from tunesmith.models import ModelLoadError, load_model

    try:
        tokenizer = load_model(spec.id, load_weights=False).tokenizer
    except (ModelLoadError, OSError, ValueError):
        return None, ""
    from tunesmith.data.stats import count_tokens

    counts = [count_tokens(c, tokenizer) for c in conversations]
    return counts, f"{spec.id} tokenizer with its chat template"


# --- The estimate ---------------------------------------------------------------------------------------------
@dataclass
class CostEstimate:
    model: str
    trains: str  # local | provider
    n_examples: int
    billing_tokens: int  # tokens in the training file, each example capped at the context length
    n_epochs: int
    trained_tokens: int  # billing tokens × epochs
    token_counting: str
    training_cost: float | None  # US$; None when no price is known
    training_hours: float | None
    hosting_per_month: float
    inference_saving_per_month: float | None  # per-token spend before minus after fine-tuning
    net_saving_per_month: float | None  # inference saving minus hosting
    break_even_days: float | None  # None: never pays back (or not computable)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UsageAssumptions:
    """How the model will be used; each field is a CLI flag."""

    requests_per_day: float | None = None
    prompt_tokens_before: float | None = None  # with the few-shot / reference part, on the model used today
    prompt_tokens_after: float | None = None  # without it, on the fine-tuned model
    completion_tokens: float = 0.0
    before_model: str | None = None  # the model used today, when fine-tuning moves to a smaller one
    price_per_1m_input_before: float | None = None
    price_per_1m_input_after: float | None = None


def estimate_cost(
    data: Path,
    model: str,
    *,
    n_epochs: int | None = None,
    price_per_1m_training_tokens: float | None = None,
    gpu_hour_price: float | None = None,
    throughput: float | None = None,
    hosting_hour_price: float | None = None,
    usage: UsageAssumptions | None = None,
    benchmarks: Path | None = None,
) -> CostEstimate:
    """Count the training file's tokens for `model`, then price training, hosting and savings."""
    from tunesmith.data.formats import read_conversations

    conversations = read_conversations(Path(data))
    if not conversations:
        raise ValueError(f"{data}: no training examples")
    counts, how = count_billing_tokens(conversations, model)
    extra = read_benchmark_throughputs(benchmarks) if benchmarks else []
    return estimate_cost_from_tokens(
        counts, model, token_counting=how, n_epochs=n_epochs,
        price_per_1m_training_tokens=price_per_1m_training_tokens, gpu_hour_price=gpu_hour_price,
        throughput=throughput, hosting_hour_price=hosting_hour_price, usage=usage, extra_throughputs=extra,
    )


def estimate_cost_from_tokens(
    token_counts: list[int],
    model: str,
    *,
    token_counting: str = "given",
    n_epochs: int | None = None,
    price_per_1m_training_tokens: float | None = None,
    gpu_hour_price: float | None = None,
    throughput: float | None = None,
    hosting_hour_price: float | None = None,
    usage: UsageAssumptions | None = None,
    extra_throughputs: list[Throughput] | None = None,
) -> CostEstimate:
    """The arithmetic, on already-counted tokens: trained tokens = billing tokens × epochs (OpenAI's rule)."""
    spec = get_model_spec(model)
    usage = usage or UsageAssumptions()
    epochs = n_epochs or default_n_epochs(len(token_counts))
    billing = sum(token_counts)
    trained = billing * epochs
    sources: list[str] = []
    notes: list[str] = [] if n_epochs else [f"{epochs} epochs: OpenAI's default for {len(token_counts)} examples"]
    price = PROVIDER_PRICES.get(spec.id)

    training_cost, hours = None, None
    if not spec.local:
        per_1m = price_per_1m_training_tokens if price_per_1m_training_tokens is not None else (
            price.training_per_1m if price else None)
        if per_1m is None:
            notes.append(f"no published training price for {spec.id}: pass --price-per-1m-training-tokens")
        else:
            training_cost = trained / 1e6 * per_1m
            sources.append(f"training ${per_1m:g}/1M tokens ("
                           + ("given" if price_per_1m_training_tokens is not None else f"price table, {PRICES_AS_OF}") + ")")
    else:
        hours, how = _local_training_hours(trained, spec.id, throughput, extra_throughputs)
        sources.append(how)
        if hours is not None and gpu_hour_price is not None:
            training_cost = hours * gpu_hour_price
            sources.append(f"compute ${gpu_hour_price:g}/hour (given)")
        elif hours is not None:
            notes.append("pass --gpu-hour-price to turn training hours into money")

    # Azure's hosting fee is per deployment of any fine-tuned model, so it applies where no token price is known
    hosting_hour = hosting_hour_price if hosting_hour_price is not None else (
        0.0 if spec.local else price.hosting_per_hour if price else AZURE_HOSTING_PER_HOUR)
    if hosting_hour_price is None and not spec.local:
        sources.append(f"hosting ${hosting_hour:g}/hour (Azure Standard deployment, {PRICES_AS_OF}; OpenAI: none)")
    hosting_month = hosting_hour * HOURS_PER_MONTH

    saving = _inference_saving_per_month(spec, usage, notes)
    net = None if saving is None else saving - hosting_month
    break_even = None
    if net is not None and net > 0 and training_cost is not None:
        break_even = training_cost / (net / DAYS_PER_MONTH)
    elif net is not None and net <= 0:
        notes.append("the saving does not cover hosting: fine-tuning never pays for itself on cost alone")
    return CostEstimate(spec.id, spec.trains, len(token_counts), billing, epochs, trained, token_counting,
                        training_cost, hours, hosting_month, saving, net, break_even, sources, notes)


def _local_training_hours(trained_tokens: int, model: str, throughput: float | None,
                          extra: list[Throughput] | None) -> tuple[float | None, str]:
    if throughput:
        return trained_tokens / throughput / 3600, f"throughput {throughput:g} tokens/s (given)"
    found = find_throughput(model, extra=extra)
    if found is None:
        return None, f"no measured throughput for {model}: pass --throughput TOKENS_PER_S"
    t, how = found
    return trained_tokens / t.tokens_per_s / 3600, (
        f"throughput {t.tokens_per_s:g} tokens/s on {t.device}, {t.method} ({how}; {t.source})")


def _inference_saving_per_month(spec: ModelSpec, usage: UsageAssumptions, notes: list[str]) -> float | None:
    """Spend per month with the long prompt on today's model minus the short prompt on the fine-tuned one."""
    if not (usage.requests_per_day and usage.prompt_tokens_before is not None and usage.prompt_tokens_after is not None):
        notes.append("pass --requests-per-day, --prompt-tokens-before and --prompt-tokens-after for the saving")
        return None
    before_in, before_out = _before_prices(usage, spec)
    after_in, after_out = _after_prices(usage, spec)
    if None in (before_in, after_in):
        notes.append(f"no inference price for {spec.id}: pass --price-per-1m-input-before/--price-per-1m-input-after")
        return None
    per_request_before = usage.prompt_tokens_before * before_in
    per_request_after = usage.prompt_tokens_after * after_in
    if usage.completion_tokens and before_out is not None and after_out is not None:
        per_request_before += usage.completion_tokens * before_out
        per_request_after += usage.completion_tokens * after_out
    else:
        notes.append("output tokens not counted (a fine-tuned model's output is often dearer per token): "
                     "pass --completion-tokens with a model from the price table")
    return (per_request_before - per_request_after) / 1e6 * usage.requests_per_day * DAYS_PER_MONTH


def _before_prices(usage: UsageAssumptions, spec: ModelSpec) -> tuple[float | None, float | None]:
    model = get_model_spec(usage.before_model).id if usage.before_model else spec.id
    if usage.price_per_1m_input_before is not None:
        return usage.price_per_1m_input_before, None
    if model in PROVIDER_PRICES:
        p = PROVIDER_PRICES[model]
        return p.base_input_per_1m, p.base_output_per_1m
    return BASE_INPUT_PRICES_ONLY.get(model, (None, None))


def _after_prices(usage: UsageAssumptions, spec: ModelSpec) -> tuple[float | None, float | None]:
    if usage.price_per_1m_input_after is not None:
        return usage.price_per_1m_input_after, None
    p = PROVIDER_PRICES.get(spec.id)
    return (p.tuned_input_per_1m, p.tuned_output_per_1m) if p else (None, None)


def params_billions(spec: ModelSpec) -> float | None:
    m = re.match(r"~?([\d.]+)\s*([BM])", spec.params or "")
    if not m:
        return None
    return float(m.group(1)) / (1000 if m.group(2) == "M" else 1)


def _number(text: str) -> float | None:
    m = re.search(r"[\d][\d,]*\.?\d*", text)
    return float(m.group(0).replace(",", "")) if m else None
