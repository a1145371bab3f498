from typer.testing import CliRunner

from tunesmith.catalog import CATALOG, LOCAL, PROVIDER, find_model_spec, get_model_spec
from tunesmith.cli import app

SEED_MODELS = {
    "babbage-002": 16_384, "davinci-002": 16_384, "gpt-35-turbo-0613": 4_096, "gpt-35-turbo-1106": 16_385,
    "gpt-35-turbo-0125": 16_385, "gpt-4-0613": 8_192, "Phi-3-mini-4k-instruct": 4_096,
    "Phi-3-mini-128k-instruct": 131_072, "Phi-3-medium-4k-instruct": 4_096, "Phi-3-medium-128k-instruct": 131_072,
    "Llama-2-7b": 4_096, "Llama-2-13b": 4_096, "Llama-2-70b": 4_096, "Llama-3.1-8B-Instruct": 131_072,
    "Llama-3.1-70B-Instruct": 131_072,
}


def test_catalog_has_every_seed_model_with_its_token_limit():
    for model_id, limit in SEED_MODELS.items():
        assert get_model_spec(model_id).context_length == limit, model_id
    assert get_model_spec("gpt-35-turbo-1106").max_output_tokens == 4_096


def test_open_weight_models_train_locally_with_a_hub_id_and_openai_models_through_the_provider():
    for spec in CATALOG:
        if spec.family in ("gpt35", "gpt4", "gpt4o", "gpt41", "o4", "gpt3-base"):
            assert spec.trains == PROVIDER and spec.hf_id is None
        elif spec.id != "tiny-random":
            assert spec.trains == LOCAL and spec.hf_id, spec.id


def test_lookup_by_alias_and_hub_id_and_unknown_id():
    assert find_model_spec("gpt-35-turbo").id == "gpt-35-turbo-0125"
    assert find_model_spec("meta-llama/Llama-3.1-8B-Instruct").id == "Llama-3.1-8B-Instruct"
    assert find_model_spec("no-such-model") is None
    try:
        get_model_spec("no-such-model")
    except KeyError as e:
        assert "babbage-002" in str(e)
    else:
        raise AssertionError("unknown id accepted")


def test_models_command_lists_the_whole_catalog():
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for spec in CATALOG:
        assert spec.id in result.output
