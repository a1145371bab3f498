"""Subsets are nested, keep the data's mix (its intent field, else its length), and come from a fixed seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tunesmith.curve.subsets import nested_subsets, read_strata, subset_sizes
from tunesmith.data.formats import iter_numbered_conversations

SIZES = [12, 25, 50, 100]


def _labels(n: int = 100) -> list[str]:
    return ["greet"] * (n // 2) + ["refund"] * (3 * n // 10) + ["cancel"] * (n // 5)  # 50% / 30% / 20%


def test_each_subset_contains_the_smaller_ones():
    subsets = nested_subsets(_labels(), SIZES, seed=3)
    for small, large in zip(SIZES, SIZES[1:]):
        assert set(subsets[small]) < set(subsets[large])
    assert [len(subsets[n]) for n in SIZES] == SIZES


def test_each_subset_keeps_the_mix_of_labels_to_within_one_example():
    labels = _labels()
    for n, indices in nested_subsets(labels, SIZES, seed=3).items():
        counts = Counter(labels[i] for i in indices)
        for label, share in (("greet", 0.5), ("refund", 0.3), ("cancel", 0.2)):
            assert abs(counts[label] - share * n) <= 1, (n, counts)


def test_the_same_seed_gives_the_same_subsets_and_another_seed_others():
    assert nested_subsets(_labels(), SIZES, seed=3) == nested_subsets(_labels(), SIZES, seed=3)
    assert nested_subsets(_labels(), SIZES, seed=3)[25] != nested_subsets(_labels(), SIZES, seed=4)[25]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_intent_field_in_the_records_is_what_they_are_stratified_by(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
             "intent": ["search", "count"][i % 2]} for i in range(20)]
    path = _write(tmp_path / "train.jsonl", rows)
    strata = read_strata(path, list(iter_numbered_conversations(path)))
    assert strata.by == "intent"
    assert strata.counts == {"search": 10, "count": 10}


def test_without_a_label_the_examples_are_stratified_by_length_quartile(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "word " * (i + 1)}, {"role": "assistant", "content": "a"}]}
            for i in range(40)]
    path = _write(tmp_path / "train.jsonl", rows)
    strata = read_strata(path, list(iter_numbered_conversations(path)))
    assert strata.by == "length quartile"
    assert sorted(Counter(strata.labels).values()) == [10, 10, 10, 10]
    assert set(strata.labels[:10]) == {"length 1/4"} and set(strata.labels[-10:]) == {"length 4/4"}


def test_fractions_become_sizes_with_the_whole_file_at_one():
    assert subset_sizes(536, [0.125, 0.25, 0.5, 1.0]) == [67, 134, 268, 536]
