"""Dedupe, split and convert: reproducible, and no duplicate crosses the train/validation line."""

import json

import pytest

from tunesmith.conversation import Conversation, Message
from tunesmith.data.curate import convert_file, dedupe, split, split_file
from tunesmith.data.fingerprint import fingerprint
from tunesmith.data.formats import DataError, read_conversations


def qa(question: str, answer: str) -> Conversation:
    return Conversation([Message("user", question), Message("assistant", answer)])


def dataset() -> list[Conversation]:
    rows = [qa(f"Question number {i} about topic {i * 7}?", f"Answer {i}: see section {i}.") for i in range(200)]
    long_text = " ".join(f"token{k}" for k in range(80))
    rows += [qa("What is the capital of France?", "Paris.")] * 3  # exact duplicates
    rows += [qa("what is the CAPITAL of france", "Paris!")]  # normalised duplicate
    rows += [qa(f"Summarise: {long_text}", "Tokens."), qa(f"Summarise: {long_text} extra", "Tokens.")]  # near
    return rows


def test_dedupe_drops_exact_normalised_and_near_duplicates():
    data = dataset()
    result = dedupe(data)
    reasons = {r.index: (r.duplicate_of, r.reason.split()[0]) for r in result.removed}
    assert reasons == {201: (200, "exact"), 202: (200, "exact"), 203: (200, "normalized"), 205: (204, "near")}
    assert len(result.kept) == len(data) - 4
    assert len(dedupe(data, near=False).kept) == len(data) - 3


def test_split_is_seeded_and_reproducible():
    a, b = split(dataset(), 0.2, seed=3), split(dataset(), 0.2, seed=3)
    assert [c.to_openai() for c in a.validation] == [c.to_openai() for c in b.validation]
    c = split(dataset(), 0.2, seed=4)
    assert [x.to_openai() for x in a.validation] != [x.to_openai() for x in c.validation]
    assert len(a.validation) == round(len(dataset()) * 0.2) and len(a.train) + len(a.validation) == len(dataset())


@pytest.mark.parametrize("seed", range(8))
def test_no_duplicate_lands_on_both_sides(seed):
    result = split(dataset(), 0.3, seed=seed)
    train = {fingerprint(c).normalized for c in result.train}
    valid = {fingerprint(c).normalized for c in result.validation}
    assert not train & valid
    near = [fingerprint(c).normalized for c in dataset()[204:206]]
    assert not (set(near) & train and set(near) & valid)


def test_split_file_writes_chat_jsonl(tmp_path):
    src = tmp_path / "all.jsonl"
    src.write_text("".join(json.dumps(c.to_openai()) + "\n" for c in dataset()))
    result = split_file(src, tmp_path / "out", 0.1, seed=0)
    assert len(read_conversations(result.train_path)) == len(result.train)
    assert len(read_conversations(result.validation_path)) == len(result.validation) == 21
    with pytest.raises(ValueError):
        split(dataset(), 1.5)


def test_convert_streams_to_chat_and_names_the_line_that_does_not_fit(tmp_path):
    src = tmp_path / "legacy.jsonl"
    src.write_text(json.dumps({"prompt": "2+2", "completion": "4"}) + "\n")
    assert convert_file(src, tmp_path / "chat.jsonl") == 1
    assert json.loads((tmp_path / "chat.jsonl").read_text())["messages"][1] == {"role": "assistant", "content": "4"}
    multi = tmp_path / "multi.jsonl"
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    multi.write_text(json.dumps({"messages": turns}) + "\n" + json.dumps({"messages": turns * 2}) + "\n")
    with pytest.raises(DataError) as e:
        convert_file(multi, tmp_path / "pc.jsonl", to="prompt-completion")
    assert e.value.line == 2
    assert not (tmp_path / "pc.jsonl").exists()  # atomic: no half-written output
