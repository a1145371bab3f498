"""OpenAI grader objects run locally: each type against values computed by hand, the python sandbox, multi formulas,
templating, grader files and `tunesmith eval --grader-file`."""

import json
import time

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.evaluate import model_reply as model_reply_module
from tunesmith.evaluate.graders import GraderError
from tunesmith.evaluate.openai_graders import (OpenAIGraderError, load_grader_file, meteor_unavailable, read_label,
                                               read_score, run_grader, validate_grader)
from tunesmith.evaluate.templating import render_template
from tunesmith.generation import Generation

SAMPLE = "{{ sample.output_text }}"


def similarity(metric, given, reference):
    spec = {"type": "text_similarity", "name": metric, "evaluation_metric": metric, "input": SAMPLE,
            "reference": "{{ item.reference }}"}
    return run_grader(spec, given, {"reference": reference})


def check(operation, given, reference):
    spec = {"type": "string_check", "name": "s", "operation": operation, "input": SAMPLE, "reference": reference}
    return run_grader(spec, given, {})["reward"]


def test_string_check_operations():
    assert check("eq", "Paris", "Paris") == 1.0 and check("eq", "Paris", "paris") == 0.0
    assert check("ne", "Paris", "paris") == 1.0 and check("ne", "Paris", "Paris") == 0.0
    assert check("like", "It is Paris.", "Paris") == 1.0 and check("like", "It is paris.", "Paris") == 0.0
    assert check("ilike", "IT IS PARIS.", "paris") == 1.0 and check("ilike", "Lyon", "paris") == 0.0


def test_run_response_has_openai_shape():
    response = run_grader({"type": "string_check", "name": "city", "operation": "eq", "input": SAMPLE,
                           "reference": "{{ item.city }}"}, "Paris", {"city": "Paris"})
    assert set(response) == {"reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"}
    metadata = response["metadata"]
    assert {"name", "type", "errors", "execution_time", "scores", "token_usage", "sampled_model_name"} <= set(metadata)
    assert metadata["name"] == "city" and metadata["type"] == "string_check" and metadata["scores"] == {"city": 1.0}
    assert not any(metadata["errors"].values())


# ref "the cat sat on the mat" vs hyp "the cat sat on a mat" (6 words each, so no brevity penalty):
# matching n-grams 1..4: 5/6, 3/5, 2/4, 1/3.
REF, HYP = "the cat sat on the mat", "the cat sat on a mat"


def test_bleu_gleu_rouge_by_hand():
    assert similarity("bleu", HYP, REF)["reward"] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert similarity("gleu", HYP, REF)["reward"] == pytest.approx((5 + 3 + 2 + 1) / (6 + 5 + 4 + 3))  # 11/18
    assert similarity("rouge_1", HYP, REF)["reward"] == pytest.approx(5 / 6)
    assert similarity("rouge_2", HYP, REF)["reward"] == pytest.approx(3 / 5)
    assert similarity("rouge_3", HYP, REF)["reward"] == pytest.approx(2 / 4)
    assert similarity("rouge_4", HYP, REF)["reward"] == pytest.approx(1 / 3)
    assert similarity("rouge_5", HYP, REF)["reward"] == 0.0  # no 5-gram in common
    assert similarity("rouge_l", HYP, REF)["reward"] == pytest.approx(5 / 6)  # LCS "the cat sat on mat"


def test_fuzzy_match_by_hand():
    # kitten / sitting: longest common subsequence "ittn" (4 of 6 + 7 chars): 2 * 4 / 13
    assert similarity("fuzzy_match", "kitten", "sitting")["reward"] == pytest.approx(8 / 13, abs=1e-4)
    assert similarity("fuzzy_match", "Hello World!", "hello world")["reward"] == 1.0  # case and punctuation dropped
    # the comma becomes a space: "hello  world" vs "hello world", 11 of 12 + 11 chars in common: 22 / 23
    assert similarity("fuzzy_match", "Hello, World", "hello world")["reward"] == pytest.approx(22 / 23)


def test_cosine_uses_the_shipped_embedding_model():
    same = similarity("cosine", "The invoice is overdue.", "The invoice is overdue.")["reward"]
    close = similarity("cosine", "The invoice is overdue.", "The bill has not been paid on time.")["reward"]
    far = similarity("cosine", "The invoice is overdue.", "Penguins live in Antarctica.")["reward"]
    assert same == pytest.approx(1.0, abs=1e-5) and far < close < same


def test_meteor_is_refused_with_the_reason_when_wordnet_is_missing():
    problem = meteor_unavailable()
    if problem is None:
        assert 0.0 < similarity("meteor", HYP, REF)["reward"] < 1.0
        return
    with pytest.raises(OpenAIGraderError, match="WordNet") as e:
        similarity("meteor", HYP, REF)
    assert e.value.param == "grader.evaluation_metric"


def test_templates_reach_nested_fields_and_report_missing_ones():
    data = {"item": {"a": {"b": [{"c": "deep"}]}, "n": 3}, "sample": {"output_text": "x"}}
    assert render_template("{{ item.a.b[0].c }}/{{item.n}}/{{ sample.output_text }}", data) == "deep/3/x"
    response = run_grader({"type": "string_check", "name": "s", "operation": "eq", "input": SAMPLE,
                           "reference": "{{ item.missing }}"}, "x", {})
    assert response["reward"] == 0.0 and response["metadata"]["errors"]["invalid_variable_error"]
    with pytest.raises(OpenAIGraderError, match="namespace") as e:
        validate_grader({"type": "string_check", "operation": "eq", "input": "{{ data.x }}", "reference": "y"})
    assert e.value.param == "grader.input"


def test_sample_output_json_is_filled_when_the_sample_is_json():
    spec = {"type": "string_check", "name": "s", "operation": "eq", "input": "{{ sample.output_json.city }}",
            "reference": "Paris"}
    assert run_grader(spec, '{"city": "Paris"}')["reward"] == 1.0


def test_validation_names_the_field():
    cases = [({"type": "nope"}, "grader.type"),
             ({"type": "string_check", "input": "a", "reference": "b"}, "grader.operation"),
             ({"type": "string_check", "input": "a", "reference": "b", "operation": "eq", "colour": 1}, "grader.colour"),
             ({"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "rouge_9"},
              "grader.evaluation_metric"),
             ({"type": "label_model", "model": "m", "input": [{"role": "user", "content": "x"}], "labels": ["a"],
               "passing_labels": ["b"]}, "grader.passing_labels"),
             ({"type": "score_model", "model": "m", "input": [{"role": "user", "content": "x"}], "range": [1, 0]},
              "grader.range"),
             ({"type": "score_model", "model": "m", "input": [{"role": "user", "content": "x"}],
               "sampling_params": {"temperature": "hot"}}, "grader.sampling_params.temperature"),
             ({"type": "label_model", "model": "m", "input": [{"role": "user", "content": None}], "labels": ["a"],
               "passing_labels": ["a"]}, "grader.input[0].content"),
             ({"type": "label_model", "model": "m", "input": [{"role": "user", "content": "x"}], "labels": ["a"],
               "passing_labels": [{"a": 1}]}, "grader.passing_labels"),
             ({"type": "python", "source": "def grade(sample, item):\n  return (\n"}, "grader.source"),
             ({"type": "multi", "calculate_output": "a + c", "graders": {"a": {"type": "string_check", "input": "a",
               "reference": "b", "operation": "eq"}}}, "grader.calculate_output"),
             ({"type": "multi", "calculate_output": "a", "graders": {"a": {"type": "string_check", "input": "a",
               "reference": "b", "operation": "like!"}}}, "grader.graders.a.operation")]
    for spec, param in cases:
        with pytest.raises(OpenAIGraderError) as e:
            validate_grader(spec)
        assert e.value.param == param, (spec, e.value)


# --- multi --------------------------------------------------------------------------------------------------------


def multi(formula, sample="Paris is the capital"):
    graders = {"exact": {"type": "string_check", "name": "exact", "operation": "eq", "input": SAMPLE,
                         "reference": "Paris"},
               "has": {"type": "string_check", "name": "has", "operation": "like", "input": SAMPLE,
                       "reference": "Paris"},
               "r1": {"type": "text_similarity", "name": "r1", "evaluation_metric": "rouge_1", "input": SAMPLE,
                      "reference": "Paris is a capital"}}
    return run_grader({"type": "multi", "name": "m", "graders": graders, "calculate_output": formula}, sample)


def test_multi_combines_sub_rewards_by_formula():
    response = multi("0.5 * exact + 0.25 * has + 0.25 * r1")
    # exact 0, has 1, rouge_1: 3 of 4 words in common each way -> 0.75
    assert response["sub_rewards"] == pytest.approx({"exact": 0.0, "has": 1.0, "r1": 0.75})
    assert response["reward"] == pytest.approx(0.25 + 0.25 * 0.75)
    assert multi("max(exact, r1) ^ 2")["reward"] == pytest.approx(0.75 ** 2)
    assert multi("sqrt(has) + floor(r1) - abs(-1) + min(1, 2, 3)")["reward"] == pytest.approx(1.0)


def test_multi_formula_refuses_anything_but_arithmetic():
    for formula in ("__import__('os').system('true')", "has.__class__", "[has]", "has if exact else r1",
                    "open('x')", "'text'", "lambda: 1"):
        with pytest.raises(OpenAIGraderError) as e:
            multi(formula)
        assert e.value.param == "grader.calculate_output", formula
    assert multi("has / exact")["metadata"]["errors"]["formula_parse_error"]  # division by zero at run time


# --- python ---------------------------------------------------------------------------------------------------------


def python_grader(source, **extra):
    return {"type": "python", "name": "py", "source": source, **extra}


def test_python_grader_gets_sample_and_item():
    source = ("def grade(sample, item):\n"
              "    print('debug output does not disturb the result')\n"
              "    return 1.0 if sample['output_text'].strip() == item['answer'] else 0.25\n")
    assert run_grader(python_grader(source), " 42 ", {"answer": "42"})["reward"] == 1.0
    assert run_grader(python_grader(source), "41", {"answer": "42"})["reward"] == 0.25


def test_python_grader_errors_are_reported_not_raised():
    response = run_grader(python_grader("def grade(sample, item):\n    return 1 / 0\n"), "x")
    errors = response["metadata"]["errors"]
    assert response["reward"] == 0.0 and errors["python_grader_runtime_error"]
    assert "ZeroDivisionError" in errors["python_grader_runtime_error_details"]


def test_python_grader_cannot_reach_the_network():
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    source = ("import socket, urllib.request\n"
              "def grade(sample, item):\n"
              f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
              "    return 1.0\n")
    response = run_grader(python_grader(source), "x")
    errors = response["metadata"]["errors"]
    assert response["reward"] == 0.0 and errors["python_grader_runtime_error"]
    assert "PermissionError" in errors["python_grader_runtime_error_details"]
    time.sleep(0.2)
    assert not accepted  # the connection never arrived
    listener.close()
    subprocess_escape = ("import subprocess\n"
                         "def grade(sample, item):\n"
                         "    subprocess.run(['curl', 'http://127.0.0.1'])\n"
                         "    return 1.0\n")
    assert run_grader(python_grader(subprocess_escape), "x")["metadata"]["errors"]["python_grader_runtime_error"]


def test_python_grader_cannot_outlive_its_timeout():
    source = "import time\ndef grade(sample, item):\n    time.sleep(60)\n    return 1.0\n"
    started = time.monotonic()
    response = run_grader(python_grader(source, timeout_s=1), "x")
    assert time.monotonic() - started < 15
    errors = response["metadata"]["errors"]
    assert response["reward"] == 0.0 and errors["python_grader_server_error"]
    assert errors["python_grader_server_error_type"] == "timeout"


def test_python_grader_never_runs_in_this_process():
    source = "import os\ndef grade(sample, item):\n    return float(os.getpid())\n"
    import os

    assert run_grader(python_grader(source), "x")["reward"] != float(os.getpid())


# --- model graders --------------------------------------------------------------------------------------------------


def test_reading_a_score_and_a_label():
    assert read_score('{"result": 0.7, "steps": []}') == 0.7
    assert read_score("I would say 4 out of 5") == 4.0
    assert read_score("no idea") is None
    assert read_label("Positive.", ["negative", "positive"]) == "positive"
    assert read_label("it is clearly negative, not positive", ["positive", "negative"]) == "negative"
    assert read_label("neutral", ["positive", "negative"]) is None


@pytest.fixture
def fixed_reply(monkeypatch):
    """The judge's reply, fixed, so rewards can be computed by hand (the real local path is tested below)."""
    replies = []

    def reply(model, messages, **params):
        replies.append(messages)
        return Generation(text=replies_text[0], prompt_tokens=11, completion_tokens=3, finish_reason="stop",
                          latency_s=0.0)

    replies_text = [""]
    monkeypatch.setattr(model_reply_module, "model_reply", reply)
    return replies_text, replies


def test_score_model_clips_to_range_and_counts_tokens(fixed_reply):
    text, seen = fixed_reply
    spec = {"type": "score_model", "name": "judge", "model": "tiny-random", "range": [1, 5],
            "input": [{"role": "system", "content": "Grade the answer."},
                      {"role": "user", "content": "Answer: {{ sample.output_text }} Reference: {{ item.ref }}"}]}
    text[0] = '{"result": 4}'
    response = run_grader(spec, "Paris", {"ref": "Paris"})
    assert response["reward"] == 4.0
    assert response["model_grader_token_usage_per_model"]["tiny-random"]["total_tokens"] == 14
    assert response["metadata"]["sampled_model_name"] == "tiny-random"
    assert seen[0][1]["content"] == "Answer: Paris Reference: Paris"
    text[0] = '{"result": 9}'
    assert run_grader(spec, "Paris", {"ref": "Paris"})["reward"] == 5.0
    text[0] = "cannot grade"
    response = run_grader(spec, "Paris", {"ref": "Paris"})
    assert response["reward"] == 0.0 and response["metadata"]["errors"]["model_grader_parse_error"]


def test_label_model_passes_on_passing_labels(fixed_reply):
    text, _ = fixed_reply
    spec = {"type": "label_model", "name": "tone", "model": "tiny-random", "labels": ["polite", "rude"],
            "passing_labels": ["polite"], "input": [{"role": "user", "content": "Tone of: {{ sample.output_text }}"}]}
    text[0] = "polite"
    assert run_grader(spec, "Thank you!")["reward"] == 1.0
    text[0] = "Rude."
    assert run_grader(spec, "Go away")["reward"] == 0.0


def test_score_model_runs_a_local_model_for_real():
    spec = {"type": "score_model", "name": "judge", "model": "tiny-random", "sampling_params": {"max_completions_tokens": 4},
            "input": [{"role": "user", "content": "Rate {{ sample.output_text }}"}]}
    response = run_grader(spec, "Paris")
    usage = response["model_grader_token_usage_per_model"]["tiny-random"]
    assert usage["completion_tokens"] <= 4 and usage["prompt_tokens"] > 0
    assert 0.0 <= response["reward"] <= 1.0
    too_long = {**spec, "input": [{"role": "user", "content": "Rate " + "word " * 3000 + "{{ sample.output_text }}"}]}
    errors = run_grader(too_long, "Paris")["metadata"]["errors"]  # over tiny-random's 2,048 tokens: reported
    assert errors["model_grader_server_error"] and "context length" in errors["model_grader_server_error_details"]
    unknown = run_grader({**spec, "model": "gpt-4o-2024-08-06"}, "Paris")
    assert unknown["metadata"]["errors"]["model_grader_server_error"]
    assert "cannot run here" in unknown["metadata"]["errors"]["model_grader_server_error_details"]


# --- grader files and tunesmith eval --------------------------------------------------------------------------------

GRADERS = [
    {"type": "string_check", "name": "exact", "operation": "eq", "input": SAMPLE, "reference": "{{ item.reference }}"},
    {"type": "text_similarity", "name": "fuzzy", "evaluation_metric": "fuzzy_match", "input": SAMPLE,
     "reference": "{{ item.reference }}", "pass_threshold": 0.3},
    {"type": "python", "name": "length", "source": "def grade(sample, item):\n    return min(1.0, len(sample['output_text']) / 20)\n"},
    {"type": "multi", "name": "mix", "calculate_output": "0.5 * e + 0.5 * r",
     "graders": {"e": {"type": "string_check", "name": "e", "operation": "ilike", "input": SAMPLE,
                       "reference": "{{ item.reference }}"},
                 "r": {"type": "text_similarity", "name": "r", "evaluation_metric": "rouge_l", "input": SAMPLE,
                       "reference": "{{ item.reference }}"}}},
]


def test_grader_file_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "graders.json"
    bad.write_text('[{"type": "string_check",\n "input": "x"\n')
    with pytest.raises(GraderError, match=r"graders.json: line 3"):
        load_grader_file(bad)
    bad.write_text(json.dumps([GRADERS[0], {"type": "string_check", "input": "x", "reference": "y"}]))
    with pytest.raises(GraderError, match=r"graders.json: graders\[1\].operation"):
        load_grader_file(bad)
    bad.write_text(json.dumps([GRADERS[0], GRADERS[0]]))
    with pytest.raises(GraderError, match="two graders are named 'exact'"):
        load_grader_file(bad)


def test_eval_with_a_grader_file_gives_the_run_endpoint_scores(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Say {w}"}, {"role": "assistant", "content": w}]}
            for w in ("yes", "no", "maybe")]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "graders.json").write_text(json.dumps({"graders": GRADERS}))
    result = CliRunner().invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--grader-file",
                                      str(tmp_path / "graders.json"), "--grader", "contains", "--max-new-tokens", "6",
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["graders"]) == {"contains", "exact", "fuzzy", "length", "mix"}
    assert summary["graders"]["fuzzy"]["threshold"] == 0.3 and not summary["graders"]["fuzzy"]["binary"]
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 3
    for p in predictions:
        for spec in GRADERS:
            expected = run_grader(spec, p["output"], {"reference": p["reference"]})["reward"]
            assert p["scores"][spec["name"]] == pytest.approx(expected), (spec["name"], p["output"])


def test_eval_refuses_a_file_grader_named_like_a_grader_flag(tmp_path):
    (tmp_path / "graders.json").write_text(json.dumps([GRADERS[0]]))
    result = CliRunner().invoke(app, ["eval", "--model", "tiny-random", "--data", str(tmp_path / "none.jsonl"),
                                      "--grader", "exact", "--grader-file", str(tmp_path / "graders.json")])
    assert result.exit_code == 2 and "two graders are named 'exact'" in result.output


def test_eval_refuses_a_bad_grader_file_before_loading_the_model(tmp_path):
    (tmp_path / "graders.json").write_text(json.dumps([{"type": "string_check", "name": "x"}]))
    result = CliRunner().invoke(app, ["eval", "--model", "no-such-model", "--data", str(tmp_path / "none.jsonl"),
                                      "--grader-file", str(tmp_path / "graders.json")])
    assert result.exit_code == 2
    assert "graders[0].input" in result.output
