"""Packing: examples never see each other, only trained positions reach the LM head, and gradient
accumulation over micro-batches equals one big batch."""

import copy

import pytest
import torch

from tests.training.conftest import family_tokenizer
from tunesmith.conversation import Conversation
from tunesmith.models import build_tiny_model
from tunesmith.training.adapters import decoder_and_head
from tunesmith.training.collate import collate_step, pack_rows
from tunesmith.training.render import render_example
from tunesmith.training.step import loss_at_targets


def conversation(question: str, answer: str) -> Conversation:
    return Conversation.from_openai({"messages": [{"role": "user", "content": question},
                                                  {"role": "assistant", "content": answer}]})


@pytest.fixture(scope="module")
def setup():
    tokenizer = family_tokenizer("smollm2")
    examples = [render_example(conversation(q, a), tokenizer) for q, a in [
        ("What is two plus two, please tell me?", "Four."),
        ("Name a colour.", "Blue, like the sky on a clear day."),
        ("Say hi", "Hi!"),
        ("Count to five slowly and carefully for me.", "One, two, three, four, five."),
        ("Spell cat", "C-A-T"),
        ("Summarise: " + "the quick brown fox jumps over the lazy dog " * 12, "A fox jumps over a dog."),
    ]]
    return tokenizer, examples


def test_first_fit_decreasing_fills_rows():
    assert pack_rows([5, 3, 2, 4, 1], row_length=5) == [[0], [3, 4], [1, 2]]


def test_positions_restart_per_example_and_targets_are_the_trained_next_tokens(setup):
    tokenizer, examples = setup
    batches = collate_step(examples, micro_batch_tokens=10_000, pad_id=tokenizer.pad_token_id)
    longest = max(len(e) for e in examples)
    assert sum(b.input_ids.shape[0] for b in batches) < len(examples)  # packed: fewer rows than examples
    assert all(b.input_ids.shape[1] <= longest for b in batches)  # no row longer than the longest example
    padding = sum(b.input_ids.numel() for b in batches) - sum(len(e) for e in examples)
    assert padding <= 0.1 * sum(len(e) for e in examples)
    assert sum(b.n_tokens for b in batches) == sum(len(e) for e in examples)
    assert sum(b.n_targets for b in batches) == sum(e.n_trained for e in examples)
    for b in batches:
        flat = b.input_ids.reshape(-1)
        assert torch.equal(flat[b.target_index + 1], b.target_ids)  # the target is the next token
    starts = sum((b.position_ids == 0).sum().item() for b in batches)
    assert starts >= len(examples)  # every example (and each pad tail) starts at position 0


def test_packed_examples_do_not_attend_to_each_other(setup):
    tokenizer, examples = setup
    model = build_tiny_model(tokenizer).eval()
    decoder, head = decoder_and_head(model)
    with torch.no_grad():
        alone = sum(loss_at_targets(decoder, head, collate_step([e], 10_000, tokenizer.pad_token_id)[0])[0]
                    for e in examples)
        packed_batches = collate_step(examples, 10_000, tokenizer.pad_token_id)
        packed = sum(loss_at_targets(decoder, head, b)[0] for b in packed_batches)
    assert sum(b.input_ids.shape[0] for b in packed_batches) < len(examples)
    assert torch.allclose(packed, alone, rtol=1e-5)


def test_loss_at_targets_equals_full_logits_loss_on_labels(setup):
    tokenizer, examples = setup
    model = build_tiny_model(tokenizer).eval()
    decoder, head = decoder_and_head(model)
    example = examples[1]
    with torch.no_grad():
        ours, _ = loss_at_targets(decoder, head, collate_step([example], 10_000, tokenizer.pad_token_id)[0])
        labels = torch.tensor([example.labels()])
        reference = model(input_ids=torch.tensor([example.ids]), labels=labels).loss * example.n_trained
    assert torch.allclose(ours, reference, rtol=1e-5)


def test_gradient_accumulation_matches_one_big_batch(setup):
    """Loss divided by the step's trained tokens: many small micro-batches give the one-batch gradient."""
    tokenizer, examples = setup
    model = build_tiny_model(tokenizer)
    grads = []
    for budget in (10_000, 20):  # as few micro-batches as allowed, then one row per micro-batch
        trial = copy.deepcopy(model)
        decoder, head = decoder_and_head(trial)
        batches = collate_step(examples, budget, tokenizer.pad_token_id)
        n_targets = sum(b.n_targets for b in batches)
        for b in batches:
            loss, _ = loss_at_targets(decoder, head, b)
            (loss / n_targets).backward()
        grads.append((len(batches), torch.cat([p.grad.reshape(-1) for p in trial.parameters() if p.grad is not None])))
    (n_one, one), (n_many, many) = grads
    assert n_one < n_many and n_many > 2
    assert torch.allclose(one, many, atol=1e-6, rtol=1e-4)
