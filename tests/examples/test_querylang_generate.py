import json
import re

import pytest

from examples.querylang import generate as gen
from examples.querylang.executor import run_query
from examples.querylang.syntax import parse_query, print_query


@pytest.fixture(scope="module")
def splits():
    return gen.generate(n_train=3000, n_valid=200, n_test=300)


def string_literals(query: str) -> set[str]:
    return {json.loads(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', query)}


def test_sizes_and_intents(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 3000, "validation": 200, "test": 300}
    assert len(gen.INTENTS) >= 15
    for name in ("train", "test"):
        assert {p.intent for p in splits[name]} == {i.name for i in gen.INTENTS}


def test_generation_is_deterministic(splits):
    again = gen.generate(n_train=3000, n_valid=200, n_test=300)
    assert again == splits
    assert gen.generate(n_train=50, n_valid=5, n_test=5, seed=8)["train"] != splits["train"][:50]


def test_every_query_is_canonical_and_runs(splits):
    for pairs in splits.values():
        for p in pairs:
            assert print_query(parse_query(p.query)) == p.query
            run_query(p.query)


def test_test_phrasings_are_never_used_in_training(splits):
    train_templates = {p.template for p in splits["train"] + splits["validation"]}
    test_templates = {p.template for p in splits["test"]}
    assert test_templates and not train_templates & test_templates
    keys = [gen.question_key(p.question) for pairs in splits.values() for p in pairs]
    assert len(keys) == len(set(keys))  # no question repeats, even up to case and punctuation


def test_held_out_values_never_appear_in_training(splits):
    train_pools, test_pools = gen.split_pools()
    held = set(test_pools.genres + test_pools.countries + test_pools.cities + test_pools.authors + test_pools.titles)
    words = set(test_pools.words)
    train_literals = set().union(*(string_literals(p.query) for p in splits["train"] + splits["validation"]))
    assert train_literals and not train_literals & held
    assert not any(w in lit.lower() for lit in train_literals for w in words)
    # and every string value a test query mentions is a held-out one
    for p in splits["test"]:
        for lit in string_literals(p.query):
            assert lit in held or lit in words, (p.question, lit)


def test_chat_files_and_manifest(tmp_path):
    splits = gen.generate(n_train=40, n_valid=5, n_test=10)
    paths = gen.write_splits(tmp_path, splits)
    lines = paths["train"].read_text().splitlines()
    assert len(lines) == 40
    record = json.loads(lines[0])
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert record["messages"][0]["content"] == gen.SYSTEM_PROMPT
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 40, "validation": 5, "test": 10}


def test_cli_writes_the_splits(tmp_path):
    gen.main(["--out", str(tmp_path), "--n-train", "30", "--n-valid", "3", "--n-test", "6"])
    assert len((tmp_path / "test.jsonl").read_text().splitlines()) == 6
