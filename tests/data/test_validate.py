"""validate_file reports each defect with the right line and code, streams, and keeps memory flat."""

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from tunesmith.data.formats import DataError
from tunesmith.data.schema import CODES, ERROR, chat_example_issues
from tunesmith.data.validate import validate_file

FIXTURES = Path(__file__).parent / "fixtures"

# (line, code) of every defect planted in fixtures/defects.jsonl (None: a whole-file issue).
EXPECTED_DEFECTS = {
    (None, "too_few_examples"), (2, "invalid_json"), (3, "not_utf8"), (4, "data_type"),
    (5, "missing_messages_list"), (6, "message_missing_key"), (7, "message_unrecognized_key"),
    (8, "unrecognized_role"), (9, "missing_content"), (10, "example_missing_assistant_message"),
    (11, "invalid_weight"), (12, "tool_message_without_call"), (13, "invalid_tool_calls"), (14, "invalid_tools"),
    (15, "duplicate_example"), (16, "near_duplicate"), (17, "too_many_tokens"), (17, "long_answer"),
    (18, "unsupported_content"), (19, "personal_data"), (19, "possible_secret"), (20, "example_unrecognized_key"),
    (20, "short_answer"), (20, "last_message_not_assistant"), (21, "no_trained_messages"),
    (21, "missing_system_message"), (22, "blank_line"), (23, "conflicting_answers"), (24, "missing_user_message"),
}


@pytest.fixture(scope="module")
def tokenizer():
    from tunesmith.models import load_model

    return load_model("tiny-random", load_weights=False).tokenizer


def reported(report):
    return {(i.line, i.code) for i in report.errors + report.warnings if i.file is None}


def test_every_planted_defect_is_reported_on_its_line(tokenizer):
    report = validate_file(FIXTURES / "defects.jsonl", tokenizer=tokenizer, context_length=2048)
    assert not report.ok
    assert EXPECTED_DEFECTS <= reported(report), EXPECTED_DEFECTS - reported(report)
    # Errors and warnings are separated by code, and nothing unexpected fires on the clean line 1.
    assert all(i.severity == ERROR for i in report.errors) and all(i.severity != ERROR for i in report.warnings)
    assert not [i for i in report.errors + report.warnings if i.line == 1]
    by_code = {i.code: i for i in report.errors + report.warnings}
    assert by_code["invalid_json"].column == 48
    assert by_code["invalid_weight"].index == 1 and by_code["invalid_weight"].field == "messages[1].weight"
    assert "2,589 tokens" in by_code["too_many_tokens"].message  # the count with SmolLM2's tokenizer + template
    assert "line 1" in by_code["duplicate_example"].message


def test_codes_cover_the_openai_vocabulary():
    openai_codes = {"data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key",
                    "unrecognized_role", "missing_content", "example_missing_assistant_message"}
    assert openai_codes <= {c for c, (sev, _) in CODES.items() if sev == ERROR}


def test_clean_file_is_ok_with_token_stats(tokenizer):
    report = validate_file(FIXTURES / "clean.jsonl", tokenizer=tokenizer, context_length=2048)
    assert report.ok and report.n_examples == 12
    assert report.stats["tokens"]["min"] > 0 and report.stats["billing_tokens"] > 0
    assert report.stats["default_n_epochs"] == 9  # ceil(100 / 12)
    assert set(report.to_dict()) >= {"ok", "n_examples", "errors", "warnings", "stats"}
    json.dumps(report.to_dict())  # machine-readable as is


def test_the_shipped_sample_is_clean(tokenizer):
    import tunesmith

    sample = Path(tunesmith.__file__).parent / "assets" / "sample_chat.jsonl"  # the README tour validates it
    report = validate_file(sample, tokenizer=tokenizer, context_length=2048)
    assert report.ok and report.n_examples >= 30, [i.to_dict() for i in report.errors]


def test_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    report = validate_file(tmp_path / "empty.jsonl")
    assert [i.code for i in report.errors] == ["empty_file"]


def test_missing_file_raises_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        validate_file(tmp_path / "nope.jsonl")


def test_train_validation_overlap_names_both_files_lines():
    report = validate_file(FIXTURES / "clean.jsonl", validation=FIXTURES / "validation_overlap.jsonl")
    assert report.ok  # the two validation lines do not repeat clean.jsonl
    report = validate_file(FIXTURES / "defects.jsonl", validation=FIXTURES / "validation_overlap.jsonl")
    [overlap] = [i for i in report.errors if i.code == "train_validation_overlap"]
    assert overlap.line == 1 and overlap.file == str(FIXTURES / "validation_overlap.jsonl")
    assert "line 1" in overlap.message


def test_near_duplicate_by_similarity_not_only_normalisation(tmp_path):
    words = [f"word{i}" for i in range(60)]
    text = " ".join(words)
    edited = " ".join(words[:30] + ["changed"] + words[31:])
    rows = [{"messages": [{"role": "user", "content": f"Summarise: {t}"},
                          {"role": "assistant", "content": "A list of numbered words."}]} for t in (text, edited)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [near] = [i for i in validate_file(path).warnings if i.code == "near_duplicate"]
    assert near.line == 2 and "similar to line 1" in near.message


def test_chat_template_error_is_reported(tmp_path):
    class BrokenTemplate:
        def apply_chat_template(self, *a, **k):
            raise ValueError("tool role not supported")

    report = validate_file(FIXTURES / "clean.jsonl", tokenizer=BrokenTemplate())
    assert report.counts["chat_template_error"] == 12 and "tool role not supported" in report.errors[-1].message
    assert report.n_examples == 0  # an example the template cannot render cannot train


def test_provider_model_checks_without_a_tokenizer():
    report = validate_file(FIXTURES / "clean.jsonl", model="gpt-35-turbo-0613")
    assert report.ok and report.stats["context_length"] == 4096
    assert "tokens_not_counted" in {i.code for i in report.warnings}


def test_issues_beyond_the_cap_are_counted_not_listed(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("not json\n" * 30)
    report = validate_file(path, max_issues_per_code=5)
    assert len([i for i in report.errors if i.code == "invalid_json"]) == 5
    assert report.counts["invalid_json"] == 30


def test_csv_and_alpaca_problems_carry_lines(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("prompt,completion\nHello there,General Kenobi.\nOnly a prompt\n")
    report = validate_file(csv_path)
    assert (3, "missing_field") in reported(report)
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "x", "output": "yes sir"}) + "\n"
                      + json.dumps({"instruction": "y"}) + "\n")
    assert (2, "missing_field") in reported(validate_file(alpaca))


def test_tool_call_ids_must_precede_their_tool_message():
    example = {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "c1", "content": "early"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "done"}]}
    issues = chat_example_issues(example, 1)
    assert [(i.code, i.index) for i in issues] == [("tool_message_without_call", 1)]


def generate_file(path: Path, n: int, answer_words: int = 80) -> Path:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    with open(path, "w") as f:
        for _ in range(n):
            question = " ".join(rng.choices(vocab, k=40))
            answer = " ".join(rng.choices(vocab, k=answer_words))
            f.write(json.dumps({"messages": [{"role": "system", "content": "You answer questions."},
                                             {"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


def test_memory_stays_flat_while_streaming(tmp_path):
    """Only hashes and counts stay per example (~200 bytes), far below the examples themselves."""
    n = 6_000
    path = generate_file(tmp_path / "big.jsonl", n, answer_words=400)
    tracemalloc.start()
    try:
        report = validate_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.n_examples == n
    size = path.stat().st_size  # ~20 MB of JSON; the parsed examples would take several times that
    assert peak < size / 4 and peak < 1_000 * n, (peak, size)
