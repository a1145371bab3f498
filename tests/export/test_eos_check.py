"""The end-of-training guard: a run whose model never emits EOS gets a `warn` event saying so; a model that
stops passes the check silently."""

from __future__ import annotations

import json

import torch

from tunesmith.models import build_tiny_model, load_smollm2_tokenizer
from tunesmith.training.eos_check import eos_check_prompts, never_stops
from tunesmith.training.render import TokenizedExample


def test_a_run_whose_model_never_stops_is_flagged_in_its_events(trained_run):
    run = trained_run("smollm2")  # random weights: EOS is one token in 49k, never the greedy choice
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    flagged = [e for e in events if e["message"].startswith("The model never stopped")]
    assert len(flagged) == 1 and flagged[0]["level"] == "warn"
    assert flagged[0]["data"]["check"] == "eos"
    assert events[-1]["message"] == "The job has successfully completed"


def test_a_model_that_emits_eos_passes():
    tokenizer = load_smollm2_tokenizer()
    model = build_tiny_model(tokenizer)
    head = torch.nn.Linear(model.config.hidden_size, len(tokenizer), bias=True)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 10.0  # EOS is always the greedy choice
    model.lm_head = head
    prompts = [tokenizer.encode("What is 2 plus 2?", add_special_tokens=False)]
    assert never_stops(model, tokenizer, prompts, 8) is False
    assert never_stops(build_tiny_model(tokenizer), tokenizer, prompts, 8) is True


def test_prompts_end_where_the_trained_answer_starts():
    example = TokenizedExample(ids=[1, 2, 3, 4, 5, 6], trained=[False, False, False, True, True, False])
    prompts, budget = eos_check_prompts([example])
    assert prompts == [[1, 2, 3]] and budget == 16  # twice the 2 trained tokens, at least 16
