"""`--engine vllm`: answers like our engine where vLLM and a GPU exist; refused with the reason elsewhere."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunesmith.cli.app import app
from tunesmith.generation.vllm import unavailable_reason

REASON = unavailable_reason()


def write_test_file(path):
    rows = [{"messages": [{"role": "user", "content": f"Say {w}"}, {"role": "assistant", "content": w}]}
            for w in ("yes", "no", "maybe")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.skipif(REASON is None, reason="vLLM can run here: the refusal does not apply")
def test_engine_vllm_is_refused_with_the_reason_where_it_cannot_run(tmp_path):
    data = write_test_file(tmp_path / "test.jsonl")
    result = CliRunner().invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--grader", "exact",
                                      "--engine", "vllm", "--output", str(tmp_path / "ev")])
    assert result.exit_code == 2 and "vllm" in result.output.lower() and REASON.split(" (")[0] in result.output


@pytest.mark.skipif(REASON is not None, reason=f"vLLM cannot run here: {REASON}")
def test_vllm_answers_greedy_like_our_engine(tmp_path):
    from tunesmith.generation import generate
    from tunesmith.generation.vllm import generate_vllm
    from tunesmith.models import load_model

    loaded = load_model("smollm2-135m-instruct")
    prompts = [[{"role": "user", "content": q}] for q in ("What is 2+2?", "Name a colour.", "Say hello.")]
    ours = generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=16)
    theirs = generate_vllm("smollm2-135m-instruct", loaded.tokenizer, prompts, max_new_tokens=16)
    assert sum(a.text == b.text for a, b in zip(ours, theirs)) >= 2  # bf16 kernels may flip a near-tie
