"""The whole NL → Shelf pipeline on tiny-random: it learns nothing, but every stage runs and writes its outputs."""

import json

import pytest

from examples.querylang.pipeline import EXEC, PipelineConfig, run_pipeline


@pytest.mark.slow
def test_pipeline_runs_every_stage_on_tiny_random(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_RETRIEVER", "bm25")  # no embedding model load: seconds matter in CI
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    config = PipelineConfig(model="tiny-random", out=tmp_path / "demo", n_train=20, n_valid=4, n_test=12,
                            batch_size=4, max_new_tokens=12, eval_batch_size=12)
    result = run_pipeline(config)

    out = tmp_path / "demo"
    assert len((out / "data" / "train.jsonl").read_text().splitlines()) == 20
    assert [r.label for r in result.baselines] == ["zero-shot+reference", "few-shot:3", "RAG", "RAG+few-shot:3"]
    for row in result.baselines + result.fine_tuned:
        summary = json.loads((row.directory / "summary.json").read_text())
        assert summary["n"] == 12 and EXEC in summary["graders"]
        assert len((row.directory / "predictions.jsonl").read_text().splitlines()) == 12
    assert (result.run_dir / "adapter" / "adapter_config.json").is_file()
    assert result.report_html.is_file() and "<svg" in result.report_html.read_text()
    assert result.verdict in ("Improved", "Degraded", "Inconclusive", "TooFewSamples")

    # the baseline with the reference in its prompt pays for it in prompt tokens; the fine-tuned model does not
    zero_shot = result.baselines[0].summary["prompt_tokens_mean"]
    assert zero_shot > 5 * result.fine_tuned[0].summary["prompt_tokens_mean"]
    saved = json.loads((out / "pipeline.json").read_text())
    assert saved["verdict"] == result.verdict and len(saved["baselines"]) == 4
    assert (out / "accuracy.png").stat().st_size > 1000
