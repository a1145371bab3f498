"""The pipeline's compare stage and `tunesmith compare` on the same eval dirs give the same verdict."""

import json

from typer.testing import CliRunner

from examples.querylang.pipeline import EXEC, GRADERS, EvalRow, write_comparison
from tests.evaluate.fixtures import write_questions, write_scored_eval
from tunesmith.cli import app

REFERENCE_PROMPT = "Translate to Shelf. " + " ".join(f"Operator {i}: does thing {i}." for i in range(60))


def _row(label, directory, strategy="zero-shot"):
    return EvalRow(label, "m", strategy, directory, json.loads((directory / "summary.json").read_text()))


def _cli_verdict(tmp_path, best, others, fine_tuned):
    out = CliRunner().invoke(app, ["compare", str(best), *map(str, others), "--baseline", str(best),
                                   "-o", str(tmp_path / "cli")])
    saved = json.loads((tmp_path / "cli" / "comparison.json").read_text())
    treatment = next(t for t in saved["treatments"] if t["path"] == str(fine_tuned))
    return out.exit_code, next((g["verdict"] for g in treatment["graders"] if g["grader"] == EXEC), None)


def test_pipeline_and_cli_give_the_same_verdict_for_a_shorter_fine_tuned_prompt(tmp_path):
    test = write_questions(tmp_path / "test.jsonl", REFERENCE_PROMPT)
    short = write_questions(tmp_path / "test_short.jsonl", "Translate to Shelf.")
    best = write_scored_eval(tmp_path / "zero", test, set(range(15)), graders=GRADERS)
    weaker = write_scored_eval(tmp_path / "weaker", test, set(range(10)), graders=GRADERS)
    tuned = write_scored_eval(tmp_path / "tuned", short, set(range(1, 30)), model="run", graders=GRADERS)

    html, pipeline_verdict = write_comparison(_row("zero", best), [_row("zero", best), _row("weaker", weaker)],
                                              [_row("fine-tuned", tuned)], tmp_path / "report")
    exit_code, cli_verdict = _cli_verdict(tmp_path, best, [weaker, tuned], tuned)
    assert exit_code == 0
    assert pipeline_verdict == cli_verdict == "Improved"  # 15 fixed, 1 broken, whatever the prompts were
    assert html.is_file()


def test_pipeline_and_cli_both_refuse_a_verdict_on_another_test_file(tmp_path):
    best = write_scored_eval(tmp_path / "zero", write_questions(tmp_path / "test.jsonl", REFERENCE_PROMPT),
                             set(range(15)), graders=GRADERS)
    elsewhere = write_questions(tmp_path / "other.jsonl", "Translate to Shelf.", offset=40)
    tuned = write_scored_eval(tmp_path / "tuned", elsewhere, set(range(30)), graders=GRADERS)

    _, pipeline_verdict = write_comparison(_row("zero", best), [_row("zero", best)], [_row("fine-tuned", tuned)],
                                           tmp_path / "report")
    exit_code, cli_verdict = _cli_verdict(tmp_path, best, [tuned], tuned)
    assert exit_code == 1 and pipeline_verdict is None and cli_verdict is None
