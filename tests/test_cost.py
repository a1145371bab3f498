import json

import pytest
from typer.testing import CliRunner

from tunesmith.assess.cost import (AZURE_HOSTING_PER_HOUR, UsageAssumptions, count_billing_tokens,
                                   estimate_cost, estimate_cost_from_tokens, find_throughput,
                                   read_benchmark_throughputs)
from tunesmith.cli import app
from tunesmith.conversation import Conversation, Message


def test_training_cost_is_tokens_times_epochs_times_price_as_in_openais_example():
    # OpenAI's guide: 100k tokens x 3 epochs on gpt-3.5-turbo-0125 costs about $2.40.
    est = estimate_cost_from_tokens([1_000] * 100, "gpt-35-turbo-0125", n_epochs=3)
    assert est.billing_tokens == 100_000 and est.trained_tokens == 300_000
    assert est.training_cost == pytest.approx(2.40)
    assert est.hosting_per_month == pytest.approx(AZURE_HOSTING_PER_HOUR * 720)


def test_price_and_epochs_can_be_overridden_and_default_epochs_follow_openais_heuristic():
    est = estimate_cost_from_tokens([500] * 20, "gpt-35-turbo-0125", price_per_1m_training_tokens=10.0)
    assert est.n_epochs == 5  # 20 examples: ceil(100 / 20)
    assert est.training_cost == pytest.approx(10_000 * 5 / 1e6 * 10.0)
    assert any("given" in s for s in est.sources)


def test_saving_and_break_even_in_days_on_known_numbers():
    usage = UsageAssumptions(requests_per_day=1_000, prompt_tokens_before=1_000, prompt_tokens_after=200,
                             price_per_1m_input_before=10.0, price_per_1m_input_after=3.0)
    est = estimate_cost_from_tokens([1_000] * 100, "gpt-35-turbo-0125", n_epochs=3, hosting_hour_price=0.0,
                                    price_per_1m_training_tokens=100.0, usage=usage)
    # per request: (1000 x $10 - 200 x $3) / 1M = $0.0094; x 1000/day x 30 days = $282/month.
    assert est.inference_saving_per_month == pytest.approx(282.0)
    assert est.net_saving_per_month == pytest.approx(282.0)
    assert est.training_cost == pytest.approx(30.0)
    assert est.break_even_days == pytest.approx(30.0 / (282.0 / 30))


def test_fine_tuned_per_token_price_and_hosting_can_make_it_never_pay_back():
    # gpt-35-turbo-0125: base input $0.50/1M, fine-tuned input $3.00/1M; 900 -> 120 prompt tokens saves nothing.
    usage = UsageAssumptions(requests_per_day=10_000, prompt_tokens_before=900, prompt_tokens_after=120)
    est = estimate_cost_from_tokens([1_000] * 100, "gpt-35-turbo-0125", n_epochs=3, usage=usage)
    assert est.inference_saving_per_month == pytest.approx((900 * 0.5 - 120 * 3.0) / 1e6 * 10_000 * 30)
    assert est.break_even_days is None
    assert any("never pays" in n for n in est.notes)


def test_moving_to_a_smaller_model_prices_before_at_that_model():
    usage = UsageAssumptions(requests_per_day=1_000, prompt_tokens_before=1_000, prompt_tokens_after=1_000,
                             before_model="gpt-4")
    est = estimate_cost_from_tokens([1_000] * 100, "gpt-35-turbo-0125", n_epochs=3, usage=usage)
    assert est.inference_saving_per_month == pytest.approx((30.0 - 3.0) * 1_000 / 1e6 * 1_000 * 30)


def test_a_model_without_a_published_price_asks_for_one():
    est = estimate_cost_from_tokens([1_000] * 100, "gpt-4-0613", n_epochs=3)
    assert est.training_cost is None
    assert any("--price-per-1m-training-tokens" in n for n in est.notes)


def test_local_training_hours_come_from_throughput_times_hour_price():
    est = estimate_cost_from_tokens([1_200] * 1_000, "smollm2-135m-instruct", n_epochs=3, throughput=1_000,
                                    gpu_hour_price=2.0)
    assert est.trained_tokens == 3_600_000
    assert est.training_hours == pytest.approx(1.0)
    assert est.training_cost == pytest.approx(2.0)
    assert est.hosting_per_month == 0.0


def test_measured_throughput_is_used_and_unmeasured_models_are_scaled_with_the_source_named():
    t, how = find_throughput("Llama-3.1-8B-Instruct")
    assert (t.tokens_per_s, how) == (3083, "measured") and "torchtune" in t.source
    t, how = find_throughput("Llama-3.1-70B-Instruct")
    assert t.tokens_per_s == pytest.approx(3083 * 8 / 70, abs=1) and "scaled from Llama-3.1-8B-Instruct" in how


def test_benchmark_tables_supply_throughput(tmp_path):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n| model | device | method | train tokens/s |\n|---|---|---|---|\n"
                  "| Phi-3-mini-4k-instruct | 1x H100 | lora | 12,345 |\n\n| other | table |\n|---|---|\n| a | b |\n")
    rows = read_benchmark_throughputs(md)
    assert [(r.model, r.device, r.tokens_per_s) for r in rows] == [("Phi-3-mini-4k-instruct", "1x H100", 12_345)]
    t, how = find_throughput("Phi-3-mini-4k-instruct", extra=rows)
    assert t.tokens_per_s == 12_345 and how == "measured" and "line 5" in t.source


def test_billing_tokens_follow_the_cookbook_formula_and_are_capped_at_the_context():
    hello = Conversation([Message("user", "hello world"), Message("assistant", "hello world")])
    counts, how = count_billing_tokens([hello], "gpt-35-turbo-0125")
    assert counts == [3 + (3 + 1 + 2) + (3 + 1 + 2)] and "cl100k_base" in how
    long = Conversation([Message("user", "word " * 6_000), Message("assistant", "ok")])
    assert count_billing_tokens([long], "gpt-35-turbo-0613")[0] == [4_096]


def _write_chat(path, n):
    rows = [{"messages": [{"role": "user", "content": f"question number {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_estimate_cost_reads_the_data_file(tmp_path):
    est = estimate_cost(_write_chat(tmp_path / "train.jsonl", 40), "gpt-35-turbo-0125")
    assert est.n_examples == 40 and est.n_epochs == 3
    assert est.trained_tokens == est.billing_tokens * 3 > 0


def test_cost_cli_json_and_prompt_tokens_from_eval_dirs(tmp_path):
    data = _write_chat(tmp_path / "train.jsonl", 30)
    for name, tokens in (("few", 800.0), ("zero", 100.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"model": "m", "strategy": name, "n": 5, "graders": {}, "prompt_tokens_mean": tokens}))
    result = CliRunner().invoke(app, ["cost", "--data", str(data), "--model", "gpt-35-turbo-0125", "--json",
                                      "--requests-per-day", "100", "--before-eval", str(tmp_path / "few"),
                                      "--after-eval", str(tmp_path / "zero"), "--hosting-hour-price", "0"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["inference_saving_per_month"] == pytest.approx((800 * 0.5 - 100 * 3.0) / 1e6 * 100 * 30)
    assert out["hosting_per_month"] == 0


def test_cost_cli_names_the_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["cost", "--data", str(tmp_path / "nope.jsonl"), "--model", "gpt-35-turbo"])
    assert result.exit_code == 2 and "nope.jsonl" in result.output


def test_cost_and_provider_preflight_count_the_same_tokens_for_tool_examples(tmp_path):
    """One cl100k counter: the cost estimate bills what the preflight checks, tools schema included."""
    from tunesmith.catalog import get_model_spec
    from tunesmith.data.formats import read_conversations
    from tunesmith.providers.preflight import validate_for_provider

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    rows = [{"messages": [{"role": "user", "content": f"Weather in city {i}?"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": f"c{i}", "type": "function",
                               "function": {"name": "get_weather", "arguments": json.dumps({"city": f"c{i}"})}}]}],
             "tools": tools} for i in range(12)]
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts, _ = count_billing_tokens(read_conversations(data), "gpt-35-turbo-0125")
    report = validate_for_provider(data, get_model_spec("gpt-35-turbo-0125"))
    assert report.ok, report.errors  # tool-call data is valid for a provider model
    assert sum(counts) == report.stats["billing_tokens_per_epoch"]
    without_tools = [Conversation.from_openai({"messages": r["messages"]}) for r in rows]
    assert sum(counts) > sum(count_billing_tokens(without_tools, "gpt-35-turbo-0125")[0])  # tools are billed
