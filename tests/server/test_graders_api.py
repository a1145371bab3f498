"""`/v1/fine_tuning/alpha/graders/run|validate` through the official SDK: every grader type answers in OpenAI's shape,
bad graders are a 400 naming the field, and the run endpoint scores as `tunesmith eval --grader-file` does."""

import json

import httpx
import openai
import pytest

from tests.server.live_server import running_server
from tunesmith.evaluate.openai_graders import load_grader_file
from tunesmith.evaluate.run import evaluate
from tunesmith.server.settings import ServerSettings

KEY = "sk-test-graders"
SAMPLE = "{{ sample.output_text }}"
RESPONSE_KEYS = {"reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"}
METADATA_KEYS = {"name", "type", "errors", "execution_time", "scores", "token_usage", "sampled_model_name"}

GRADERS = {
    "string_check": {"type": "string_check", "name": "city", "operation": "ilike", "input": SAMPLE,
                     "reference": "{{ item.city }}"},
    "text_similarity": {"type": "text_similarity", "name": "sim", "evaluation_metric": "rouge_1", "input": SAMPLE,
                        "reference": "{{ item.city }} is a city"},
    "score_model": {"type": "score_model", "name": "judge", "model": "tiny-random",
                    "sampling_params": {"max_completions_tokens": 4},
                    "input": [{"role": "user", "content": "Score {{ sample.output_text }} against {{ item.city }}"}]},
    "label_model": {"type": "label_model", "name": "tone", "model": "tiny-random", "labels": ["ok", "bad"],
                    "passing_labels": ["ok"], "input": [{"role": "user", "content": "{{ sample.output_text }}"}]},
    "python": {"type": "python", "name": "py",
               "source": "def grade(sample, item):\n    return 1.0 if item['city'] in sample['output_text'] else 0.0\n"},
    "multi": {"type": "multi", "name": "mix", "calculate_output": "0.5 * a + 0.5 * b",
              "graders": {"a": {"type": "string_check", "name": "a", "operation": "like", "input": SAMPLE,
                                "reference": "{{ item.city }}"},
                          "b": {"type": "string_check", "name": "b", "operation": "eq", "input": SAMPLE,
                                "reference": "{{ item.city }}"}}},
}
# by hand, for "Paris!": rouge_1 of ["paris"] against ["paris", "is", "a", "city"]: P 1, R 1/4, F 2 * 0.25 / 1.25
EXPECTED = {"string_check": 1.0, "text_similarity": 0.4, "python": 1.0, "multi": 0.5}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("data"), api_key=KEY)
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)


@pytest.mark.parametrize("kind", list(GRADERS))
def test_run_each_grader_type_in_openai_shape(client, kind):
    response = client.fine_tuning.alpha.graders.run(grader=GRADERS[kind], model_sample="Paris is nice",
                                                    item={"city": "Paris"})
    body = response.model_dump(by_alias=True)
    assert RESPONSE_KEYS <= set(body) and METADATA_KEYS <= set(body["metadata"])
    assert body["metadata"]["type"] == kind and body["metadata"]["name"] == GRADERS[kind]["name"]
    assert isinstance(response.metadata.errors.python_grader_runtime_error, bool)
    if kind in ("score_model", "label_model"):
        usage = body["model_grader_token_usage_per_model"]["tiny-random"]
        assert usage["prompt_tokens"] > 0 and body["metadata"]["sampled_model_name"] == "tiny-random"
    if kind == "multi":
        assert body["sub_rewards"] == {"a": 1.0, "b": 0.0}


def test_run_rewards_match_hand_computed_values(client):
    for kind, expected in EXPECTED.items():
        reward = client.fine_tuning.alpha.graders.run(grader=GRADERS[kind], model_sample="Paris!",
                                                      item={"city": "Paris"}).reward
        assert reward == pytest.approx(expected), kind


def test_validate_returns_the_grader_and_refuses_bad_ones_with_400(client, server):
    for grader in GRADERS.values():
        assert client.fine_tuning.alpha.graders.validate(grader=grader).grader.name == grader["name"]
    bad = {**GRADERS["string_check"], "operation": "startswith"}
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.alpha.graders.validate(grader=bad)
    assert e.value.body["param"] == "grader.operation"
    raw = httpx.post(server + "/v1/fine_tuning/alpha/graders/run", headers={"Authorization": f"Bearer {KEY}"},
                     json={"grader": GRADERS["python"], "model_sample": 3})
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "model_sample"
    raw = httpx.post(server + "/v1/fine_tuning/alpha/graders/run", headers={"Authorization": f"Bearer {KEY}"},
                     content=b"{not json")
    assert raw.status_code == 400


def test_a_model_grader_cannot_make_the_server_load_an_arbitrary_model(client, tmp_path):
    grader = {**GRADERS["score_model"], "model": str(tmp_path)}
    with pytest.raises(openai.NotFoundError) as e:
        client.fine_tuning.alpha.graders.run(grader=grader, model_sample="x")
    assert e.value.body["code"] == "model_not_found"


def test_the_run_endpoint_scores_as_tunesmith_eval_does(client, tmp_path):
    specs = [{**GRADERS[k], "reference": "{{ item.reference }}"} if "reference" in GRADERS[k] else GRADERS[k]
             for k in ("string_check", "text_similarity")]
    specs.append({"type": "python", "name": "len",
                  "source": "def grade(sample, item):\n    return min(1.0, len(sample['output_text']) / 30)\n"})
    (tmp_path / "graders.json").write_text(json.dumps(specs))
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in (("Capital of France?", "Paris"), ("Capital of Italy?", "Rome"))))
    result = evaluate("tiny-random", data, load_grader_file(tmp_path / "graders.json"), max_new_tokens=6,
                      output_dir=tmp_path / "eval")
    for item in result.items:
        for spec in specs:
            reward = client.fine_tuning.alpha.graders.run(grader=spec, model_sample=item.output,
                                                          item={"reference": item.reference}).reward
            assert item.scores[spec["name"]] == pytest.approx(reward), spec["name"]
