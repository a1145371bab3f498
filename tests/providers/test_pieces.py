"""The pieces that need no server: retries, results-file decoding, local validation before upload."""

from __future__ import annotations

import base64
import json

import httpx2
import openai
import pytest

from tunesmith.providers.client import call_with_retries
from tunesmith.providers.config import ProviderConfig, ProviderError
from tunesmith.openai_tokens import OpenAIChatTokenCounter
from tunesmith.providers.preflight import provider_upload
from tunesmith.providers.remote_train import (decode_results_file, normalize_results_csv, provider_model_spec,
                                              train_remote)
from tunesmith.train_config import build_config
from tunesmith.artifacts.run_dir import RESULTS_COLUMNS


def _status_error(status: int, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx2.Request("GET", "http://provider/v1/fine_tuning/jobs/ftjob-1")
    response = httpx2.Response(status, headers=headers or {}, request=request, json={"error": {"message": "x"}})
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError, 400: openai.BadRequestError}[status]
    return cls("x", response=response, body=None)


def test_transient_errors_are_retried_with_growing_waits_then_given_up():
    errors = [_status_error(500), openai.APIConnectionError(request=httpx2.Request("GET", "http://p")),
              _status_error(429, {"retry-after": "7"})]
    waits = []

    def flaky():
        if errors:
            raise errors.pop(0)
        return "answer"

    assert call_with_retries(flaky, what="poll", sleep=waits.append) == "answer"
    assert len(waits) == 3 and waits[2] == 7.0  # the provider's retry-after wins over our own schedule
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # jittered 1s, 2s

    def always_down():
        raise _status_error(500)

    with pytest.raises(ProviderError, match="poll: the provider did not answer"):
        call_with_retries(always_down, what="poll", patience_s=3, sleep=lambda s: None)


def test_client_errors_are_not_retried():
    calls = []

    def bad_request():
        calls.append(1)
        raise _status_error(400)

    with pytest.raises(openai.BadRequestError):
        call_with_retries(bad_request, what="create", sleep=lambda s: None)
    assert len(calls) == 1


def test_results_file_is_decoded_whether_base64_or_plain_and_columns_are_ours():
    azure_csv = ("step,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,"
                 "full_valid_loss,full_valid_mean_token_accuracy\n1,1.5,0.4,1.6,0.38,,\n2,1.2,0.5,,,1.3,0.45\n")
    openai_b64 = base64.b64encode(b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
                                  b"1,1.52347,0.0,,\n")
    assert decode_results_file(azure_csv.encode()) == azure_csv
    assert decode_results_file(openai_b64).startswith("step,train_loss,train_accuracy")

    rows = normalize_results_csv(azure_csv).splitlines()
    assert rows[0] == ",".join(RESULTS_COLUMNS)
    assert rows[1] == "1,1.5,0.4,1.6,0.38,,"  # Azure's validation_mean_token_accuracy → valid_mean_token_accuracy
    assert normalize_results_csv(decode_results_file(openai_b64)).splitlines()[1] == "1,1.52347,0.0,,,,"
    with pytest.raises(ProviderError, match="neither CSV nor base64"):
        decode_results_file(b"\x89PNG garbage")


def test_cl100k_counts_follow_the_cookbook():
    counter = OpenAIChatTokenCounter()
    messages = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]
    # 3 per message + role + content tokens, 3 to prime the reply: 3+1+2 + 3+1+1 + 3 = 14
    assert len(counter.apply_chat_template(messages)) == 14
    assert counter(["<|endoftext|> is text here"])["input_ids"][0]  # special-token text does not raise


def test_data_over_the_provider_models_token_limit_never_leaves_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("K", "key")
    lines = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i in range(11)]
    lines.insert(4, {"messages": [{"role": "user", "content": "word " * 34000}, {"role": "assistant", "content": "ok"}]})
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    unreachable = ProviderConfig(name="p", kind="openai", endpoint="http://127.0.0.1:9/v1", api_key_env="K")
    config = build_config({"model": "gpt-4.1-nano", "training_file": str(train), "output": str(tmp_path / "r")})

    with pytest.raises(ProviderError, match=r"train\.jsonl:5 .*too_many_tokens") as raised:
        train_remote(config, unreachable)
    assert "32,768" in str(raised.value)  # gpt-4.1-nano's training-example limit, from the catalog
    assert not (tmp_path / "r").exists()


def test_open_weight_models_do_not_go_to_a_provider():
    assert provider_model_spec("gpt-35-turbo").id == "gpt-35-turbo-0125"
    assert provider_model_spec("ft:gpt-4-0613:acme:v1:abc123").id == "gpt-4-0613"
    with pytest.raises(ProviderError, match="open weights"):
        provider_model_spec("tiny-random")


def test_uploads_are_chat_jsonl_whatever_format_the_data_came_in(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    assert provider_upload(chat, provider_model_spec("gpt-35-turbo-0125")) == ("chat.jsonl", chat.read_bytes())

    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "hi"}]))
    name, data = provider_upload(alpaca, provider_model_spec("gpt-4"))
    assert name == "alpaca.jsonl"
    assert json.loads(data) == {"messages": [{"role": "user", "content": "Say hi"},
                                             {"role": "assistant", "content": "hi"}]}
    name, data = provider_upload(chat, provider_model_spec("babbage-002"))  # completion models: prompt/completion
    assert json.loads(data) == {"prompt": "hi", "completion": "hello"}
