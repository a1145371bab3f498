"""Token statistics use the model's own tokenizer and chat template; billing follows OpenAI's heuristic."""

from pathlib import Path

import pytest

from tunesmith.conversation import Conversation, Message
from tunesmith.data.formats import read_conversations
from tunesmith.data.stats import billing, format_histogram, histogram, summarize, token_stats

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tokenizer():
    from tunesmith.models import load_model

    return load_model("tiny-random", load_weights=False).tokenizer


def test_token_counts_match_the_rendered_chat_template(tokenizer):
    conversations = read_conversations(FIXTURES / "clean.jsonl")
    stats = token_stats(conversations, tokenizer, context_length=2048)
    expected = [len(tokenizer.apply_chat_template(c.to_template_messages(), tokenize=True)["input_ids"])
                for c in conversations]
    assert stats["tokens"]["min"] == min(expected) and stats["tokens"]["max"] == max(expected)
    assert stats["tokens"]["total"] == sum(expected) == stats["billing_tokens_per_epoch"]
    assert stats["default_n_epochs"] == 9 and stats["billing_tokens"] == 9 * sum(expected)
    assert sum(b["count"] for b in stats["histogram"]) == len(conversations)
    # Assistant tokens count only the answers, which are a part of the whole.
    assert 0 < stats["assistant_tokens"]["max"] < stats["tokens"]["min"]


def test_weight_zero_turns_are_not_counted_as_trained(tokenizer):
    def conv(weight):
        return Conversation([Message("user", "hi"), Message("assistant", "a long answer here", weight=weight),
                             Message("user", "and?"), Message("assistant", "ok then")])

    trained_all = token_stats([conv(1)], tokenizer, 2048)["assistant_tokens"]["total"]
    trained_last = token_stats([conv(0)], tokenizer, 2048)["assistant_tokens"]["total"]
    assert trained_last < trained_all


def test_billing_caps_each_example_at_the_context_limit_and_picks_epochs():
    result = billing([100, 5000, 300], context_length=1000)
    assert result["billing_tokens_per_epoch"] == 100 + 1000 + 300 and result["n_over_context"] == 1
    assert result["default_n_epochs"] == 25  # 3 examples: OpenAI's heuristic caps at 25
    assert billing([10] * 20_000, None)["default_n_epochs"] == 1
    assert billing([10] * 20, None, n_epochs=2)["billing_tokens"] == 400


def test_summary_and_histogram_shapes():
    s = summarize([1, 2, 3, 4, 100])
    assert (s["min"], s["p50"], s["max"], s["total"]) == (1, 3.0, 100, 110) and s["p95"] > 4
    assert summarize([]) is None
    bins = histogram([5, 5, 5])
    assert bins == [{"lo": 5, "hi": 5, "count": 3}]
    bins = histogram(list(range(100)))
    assert len(bins) == 10 and sum(b["count"] for b in bins) == 100 and bins[-1]["hi"] == 99
    lines = format_histogram(bins)
    assert len(lines) == 10 and lines[0].count("#") == 40
