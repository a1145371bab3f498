"""Each prompt strategy builds exactly the prompt it should."""

import pytest

from tunesmith.baselines.strategy import StrategyError, parse_strategy
from tunesmith.conversation import Conversation, Message


def qa(question: str, answer: str, system: str | None = "Answer tersely.") -> Conversation:
    head = [Message("system", system)] if system else []
    return Conversation(head + [Message("user", question), Message("assistant", answer)])


POOL = [qa("capital of France?", "Paris"), qa("capital of Spain?", "Madrid"), qa("boiling point of water?", "100 C"),
        qa("capital of Italy?", "Rome"), qa("largest ocean?", "Pacific")]


def as_pairs(messages):
    return [(m.role, m.content) for m in messages]


def test_zero_shot_keeps_the_data_system_prompt_or_replaces_it():
    conv = qa("capital of Peru?", "Lima")
    assert as_pairs(parse_strategy("zero-shot").build_messages(conv)) == [
        ("system", "Answer tersely."), ("user", "capital of Peru?")]
    assert as_pairs(parse_strategy("zero-shot", system_prompt="Be a geographer.").build_messages(conv)) == [
        ("system", "Be a geographer."), ("user", "capital of Peru?")]
    no_system = qa("hi?", "hello", system=None)
    assert as_pairs(parse_strategy("zero-shot").build_messages(no_system)) == [("user", "hi?")]
    assert as_pairs(parse_strategy("zero-shot", system_prompt="S").build_messages(no_system)) == [
        ("system", "S"), ("user", "hi?")]


def test_few_shot_random_puts_k_examples_before_the_question_and_never_the_question_itself():
    strategy = parse_strategy("few-shot:2", pool=POOL)
    conv = POOL[0]  # the pool may be the test file: the item must not be its own example
    messages = strategy.build_messages(conv)
    roles = [m.role for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1].content == "capital of France?"
    examples = {(messages[i].content, messages[i + 1].content) for i in (1, 3)}
    assert ("capital of France?", "Paris") not in examples
    assert examples <= {(q.messages[1].content, q.reference()) for q in POOL}
    assert as_pairs(strategy.build_messages(conv)) == as_pairs(messages)  # seeded: reruns give the same prompt


def test_few_shot_nearest_neighbours_pick_similar_questions_nearest_last(monkeypatch):
    monkeypatch.setenv("TUNESMITH_RETRIEVER", "bm25")
    messages = parse_strategy("few-shot:2:nn", pool=POOL).build_messages(qa("capital of Germany?", "Berlin"))
    questions = [messages[i].content for i in (1, 3)]
    assert all(q.startswith("capital of") for q in questions)
    assert messages[-1].content == "capital of Germany?"


def test_rag_adds_retrieved_chunks_to_the_system_prompt(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_RETRIEVER", "bm25")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "schema.sql").write_text("CREATE TABLE orders(id, customer_id, total);")
    (docs / "weather.md").write_text("Rain is likely on Tuesday.")
    strategy = parse_strategy(f"rag:{docs}:1")
    messages = strategy.build_messages(qa("Which columns does the orders table have?", "id, customer_id, total"))
    assert as_pairs(messages) == [
        ("system", "Answer tersely.\n\nUse this reference material when it helps:\n\n"
                   "[1] (schema.sql)\nCREATE TABLE orders(id, customer_id, total);"),
        ("user", "Which columns does the orders table have?"),
    ]


def test_rag_plus_few_shot_combine(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_RETRIEVER", "bm25")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "geo.txt").write_text("France's capital is Paris.")
    messages = parse_strategy(f"rag:{docs}+few-shot:1", system_prompt="Be brief.", pool=POOL).build_messages(
        qa("capital of France?", "Paris"))
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0].content.startswith("Be brief.\n\nUse this reference material") and "geo.txt" in messages[0].content


def test_strategy_errors_say_what_to_write():
    with pytest.raises(StrategyError, match="--pool"):
        parse_strategy("few-shot:3")
    with pytest.raises(StrategyError, match="K ≥ 1"):
        parse_strategy("few-shot:x", pool=POOL)
    with pytest.raises(StrategyError, match="random' or 'nn"):
        parse_strategy("few-shot:2:knn", pool=POOL)
    with pytest.raises(StrategyError, match="not found"):
        parse_strategy("rag:/no/such/folder")
    with pytest.raises(StrategyError, match="unknown strategy part"):
        parse_strategy("chain-of-thought")
