"""The readiness assessment on crafted evidence: data files and eval directories as the other areas write them."""

import json
import random

import pytest
from typer.testing import CliRunner

from tunesmith.assess.readiness import CAUTION, NOT_YET, READY, assess
from tunesmith.assess.usecase import classify_use_case
from tunesmith.cli import app

MODEL = "tiny-random"  # local chat model with SmolLM2's tokenizer: validation counts tokens offline in a second
FORMAT_USE_CASE = ("Rewrite customer e-mails as support tickets in our brand tone, always answering in our ticket "
                   "JSON format; prompting alone gets the fields wrong")
KNOWLEDGE_USE_CASE = "Answer questions about our latest product documentation and prices, which change every week"
WORDS = ("invoice parcel refund router laptop delay warranty courier battery screen keyboard login password "
         "account upgrade downgrade subscription coupon voucher discount address postcode tracking damaged "
         "missing late early broken cracked charger cable adapter printer toner ink scanner monitor speaker "
         "headset microphone camera lens tripod drone propeller tablet stylus case strap watch band sensor "
         "thermostat boiler radiator valve pump filter hose nozzle ladder drill hammer").split()


def prompts(n, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, 9)) for _ in range(n)]


def write_chat(path, questions, answers=None):
    answers = answers or [json.dumps({"ticket": i, "topic": q.split()[0]}) for i, q in enumerate(questions)]
    rows = [{"messages": [{"role": "system", "content": "You turn e-mails into ticket JSON."},
                          {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in zip(questions, answers)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_eval(path, strategy, means, items=(), prompt_tokens_mean=120.0, data="val.jsonl"):
    """An eval directory: summary.json (+ predictions.jsonl with items = [(id, question, passed)])."""
    path.mkdir(parents=True)
    graders = {g: {"mean": m, "pass_rate": m, "ci95": [m - 0.05, min(m + 0.05, 1.0)], "n": 20, "binary": True,
                   "threshold": 1.0} for g, m in means.items()}
    path.joinpath("summary.json").write_text(json.dumps({
        "model": MODEL, "strategy": strategy, "data": str(data), "n": 20, "graders": graders,
        "prompt_tokens_mean": prompt_tokens_mean, "completion_tokens_mean": 20.0}))
    lines = [{"id": i, "messages": [{"role": "user", "content": q}], "reference": "{}", "output": "x",
              "scores": {g: float(ok) for g in means}, "passed": {g: ok for g in means}} for i, q, ok in items]
    path.joinpath("predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def evidence(tmp_path):
    """Clean training (60) and validation (20) data, and both baselines whose failures the training data covers."""
    train_q = prompts(60, seed=1)
    val_q = prompts(20, seed=2)
    train = write_chat(tmp_path / "train.jsonl", train_q)
    val = write_chat(tmp_path / "val.jsonl", val_q)
    # The best baseline's failures resemble training examples (same words, one swapped).
    failures = [(f"item-{i}", train_q[i].rsplit(" ", 1)[0] + " please", False) for i in range(6)]
    passes = [(f"item-{i}", q, True) for i, q in enumerate(val_q[6:], start=6)]
    few = write_eval(tmp_path / "evals" / "few-shot", "few-shot:3", {"json": 0.55}, failures[:4] + passes,
                     prompt_tokens_mean=640.0, data=val)
    rag = write_eval(tmp_path / "evals" / "rag", "rag:docs", {"json": 0.7}, failures + passes, data=val)
    return {"train": train, "validation": val, "baselines": [few, rag], "tmp": tmp_path}


def finding(result, question_start):
    return next(f for f in result.findings if f.question.startswith(question_start))


def test_everything_in_place_is_ready(evidence):
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    baselines=evidence["baselines"], model=MODEL, metric="json", target=0.9)
    assert [f.status for f in result.findings] == [READY] * 4, [(f.question, f.reasons) for f in result.findings]
    assert result.verdict == READY
    assert "tunesmith train --model tiny-random" in " ".join(result.verdict_reasons)
    tried = " ".join(finding(result, "What").reasons)
    assert "rag:docs" in tried and "json 0.7" in tried
    assert "6 of 20 items wrong" in tried and "6 of 6 failures (100%) have a similar training example" in tried
    assert "a gap of 0.2" in " ".join(finding(result, "How").reasons)


def test_no_baselines_is_not_yet_and_names_the_evals_to_run(evidence):
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    model=MODEL, metric="json", target=0.9)
    tried = finding(result, "What")
    assert result.verdict == NOT_YET and tried.status == NOT_YET
    steps = "\n".join(tried.next_steps)
    assert "tunesmith eval --model tiny-random" in steps
    assert "--strategy few-shot:3 --pool" in steps and "--strategy rag:DOCS_DIR" in steps
    assert f"--data {evidence['validation']}" in steps and "--grader json" in steps


def test_knowledge_use_case_recommends_rag_first(evidence):
    result = assess(use_case=KNOWLEDGE_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    baselines=evidence["baselines"][:1], model=MODEL, metric="json", target=0.9)
    why = finding(result, "Why")
    assert why.status == NOT_YET and "RAG first" in " ".join(why.reasons)
    assert "RAG first" in result.verdict_reasons[0]
    # Without a RAG baseline, a knowledge use case has not tried what it must try first.
    assert finding(result, "What").status == NOT_YET
    assert any("--strategy rag:" in s for s in finding(result, "What").next_steps)


def test_best_baseline_meeting_the_target_says_fine_tuning_may_not_be_needed(evidence):
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    baselines=evidence["baselines"], model=MODEL, metric="json", target=0.6)
    measured = finding(result, "How")
    assert measured.status == CAUTION and result.verdict == CAUTION
    assert "already meets the target" in result.verdict_reasons[0]
    assert "rag:docs" in result.verdict_reasons[0] and "may not be needed" in result.verdict_reasons[0]


def test_vague_and_missing_use_cases_are_not_ready(evidence):
    vague = assess(use_case="make the model better", train=evidence["train"], model=MODEL)
    assert finding(vague, "Why").status == NOT_YET and "not a use case" in finding(vague, "Why").reasons[0]
    missing = assess(model=MODEL)
    assert missing.verdict == NOT_YET
    assert [f.status for f in missing.findings] == [NOT_YET] * 4
    assert "--use-case" in finding(missing, "Why").next_steps[0]


def test_cost_as_main_motive_is_caution_with_the_numbers(evidence, tmp_path):
    zero = write_eval(tmp_path / "zero", "zero-shot", {"json": 0.5}, prompt_tokens_mean=100.0)
    result = assess(use_case="Our API bill is too expensive; we want to cut cost per request",
                    train=evidence["train"], baselines=[zero, evidence["baselines"][0]], model="gpt-35-turbo-0125")
    why = finding(result, "Why")
    assert why.status == CAUTION and "main motive" in why.reasons[0]
    text = " ".join(why.reasons)
    assert "epochs" in text and "hosting $1,224/month" in text
    assert result.cost["prompt_tokens_before" if False else "billing_tokens"] > 0
    assert result.cost["inference_saving_per_month"] is None  # no request volume given
    assert "tunesmith cost --data" in why.next_steps[0]


def test_curation_signals_flag_the_data_and_overlap_flags_the_validation_set(tmp_path):
    q = prompts(60, seed=3)
    answers = [json.dumps({"ticket": i}) for i in range(60)]
    q[10], answers[10] = q[9], '{"ticket": "other"}'  # same input, different answer
    q[20], answers[20] = q[19], answers[19]  # exact duplicate
    answers[30] = "long " * 2_000  # a pasted log
    train = write_chat(tmp_path / "train.jsonl", q, answers)
    val_q = prompts(10, seed=4) + [q[5]]  # the last one leaks from training, answer and all
    val = write_chat(tmp_path / "val.jsonl", val_q, [json.dumps({"ticket": i}) for i in range(10)] + [answers[5]])
    result = assess(use_case=FORMAT_USE_CASE, train=train, validation=val, model=MODEL)
    data = " ".join(finding(result, "Which").reasons)
    assert finding(result, "Which").status == CAUTION
    assert "1 duplicate example(s), e.g. line(s) 21" in data
    assert "different answer" in data and "line(s) 11" in data
    assert "length outlier" in data and "line(s) 31" in data
    assert "also in the training data" in data
    assert any("tunesmith data dedupe" in s for s in finding(result, "Which").next_steps)
    measured = finding(result, "How")
    assert measured.status == NOT_YET  # no metric either, but the overlap is named
    assert "not separate" in " ".join(measured.reasons)


def test_too_few_examples_and_a_format_the_model_cannot_train_on_are_not_yet(tmp_path):
    few = write_chat(tmp_path / "few.jsonl", prompts(5))
    assert "fewer than the minimum of 10" in " ".join(finding(assess(train=few, model=MODEL), "Which").reasons)
    multi = tmp_path / "multi.jsonl"
    turn = [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c"}]
    multi.write_text("".join(json.dumps({"messages": turn + [{"role": "user", "content": f"{q}"},
                                                             {"role": "assistant", "content": "d"}]}) + "\n"
                             for q in prompts(60)))
    data = finding(assess(train=multi, model="babbage-002"), "Which")
    assert data.status == NOT_YET and "Format mismatch: chat data, but babbage-002" in " ".join(data.reasons)
    completion = tmp_path / "pc.jsonl"
    completion.write_text("".join(json.dumps({"prompt": q, "completion": "x y"}) + "\n" for q in prompts(60)))
    data = finding(assess(train=completion, model=MODEL), "Which")
    assert data.status == CAUTION and any("--to chat" in s for s in data.next_steps)


def test_failures_the_training_data_does_not_cover_are_caution(evidence, tmp_path):
    unseen = [(f"u{i}", f"completely different question about gardening number {i}", False) for i in range(5)]
    run = write_eval(tmp_path / "evals2" / "rag", "rag:docs", {"json": 0.5}, unseen, data=evidence["validation"])
    few = write_eval(tmp_path / "evals2" / "few", "few-shot:3", {"json": 0.4}, data=evidence["validation"])
    result = assess(use_case=FORMAT_USE_CASE, train=evidence["train"], validation=evidence["validation"],
                    baselines=[run, few], model=MODEL, metric="json", target=0.9)
    tried = finding(result, "What")
    assert tried.status == CAUTION and "0 of 5 failures (0%)" in " ".join(tried.reasons)
    assert "u0" in tried.next_steps[0]


def test_use_case_classification_explains_itself():
    uc = classify_use_case("Translate English questions into our query language syntax, always valid")
    assert uc.kind == "suits" and uc.syntax_task
    assert "query language" in uc.suits["syntax or a language the model lacks"]
    assert classify_use_case("Answer questions about our docs and fix the tone").kind == "knowledge+suits"
    assert classify_use_case("improve quality").kind == "vague"


def test_cli_writes_markdown_html_and_json_and_prints_json(evidence):
    out = evidence["tmp"] / "report"
    args = ["assess", "--use-case", FORMAT_USE_CASE, "--train", str(evidence["train"]), "--validation",
            str(evidence["validation"]), "--model", MODEL, "--metric", "json", "--target", "0.6", "--json",
            "--output", str(out)]
    for b in evidence["baselines"]:
        args += ["--baseline", str(b)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["verdict"] == CAUTION and len(printed["findings"]) == 4
    assert "already meets the target" in (out / "assessment.md").read_text()
    assert "caution" in (out / "assessment.html").read_text()
    assert json.loads((out / "assessment.json").read_text())["verdict"] == CAUTION


def test_cli_use_case_from_a_file_and_terminal_report(evidence):
    use_case = evidence["tmp"] / "use-case.txt"
    use_case.write_text(KNOWLEDGE_USE_CASE)
    result = CliRunner().invoke(app, ["assess", "--use-case", str(use_case), "--model", MODEL])
    assert result.exit_code == 0, result.output
    assert "not yet" in result.output and "RAG first" in result.output


def test_a_malformed_eval_directory_is_named(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({"model": "m", "strategy": "zero-shot", "graders": {"json": {}}}))
    result = CliRunner().invoke(app, ["assess", "--baseline", str(bad), "--model", MODEL])
    assert result.exit_code == 2
    assert "summary.json" in result.output and "graders.json.mean" in result.output
