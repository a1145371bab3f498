"""Each reader turns its format into the same Conversations; writers and detection round-trip."""

import json

import pytest

from tunesmith.data.formats import (
    DataError,
    conversation_to_record,
    detect_format,
    iter_records,
    parse_column_map,
    read_conversations,
    write_conversations,
)
from tunesmith.data.schema import Issue


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_chat_reader_keeps_tools_tool_calls_names_and_weights(tmp_path):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    record = {"tools": tools, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Find order 7", "name": "ann"},
        {"role": "assistant", "content": "draft", "weight": 0},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped.", "weight": 1},
    ]}
    [conv] = read_conversations(write_jsonl(tmp_path / "d.jsonl", [record]))
    assert conv.tools == tools
    assert conv.messages[1].name == "ann"
    assert [m.trained for m in conv.messages] == [False, False, False, True, False, True]
    assert conv.messages[3].tool_calls[0].name == "lookup" and conv.messages[3].tool_calls[0].arguments == "{\"id\": 7}"
    assert conv.messages[4].tool_call_id == "c1"
    assert conv.to_openai() == record | {"messages": record["messages"]}


def test_chat_reader_joins_text_parts_and_maps_legacy_function_calls(tmp_path):
    record = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": None, "function_call": {"name": "greet", "arguments": "{}"}},
        {"role": "function", "name": "greet", "content": "hi"},
        {"role": "assistant", "content": "Hi!"},
    ]}
    [conv] = read_conversations(write_jsonl(tmp_path / "d.jsonl", [record]))
    assert conv.messages[0].content == "Hello there"
    call = conv.messages[1].tool_calls[0]
    assert call.name == "greet" and conv.messages[2].role == "tool" and conv.messages[2].tool_call_id == call.id


def test_prompt_completion_reader(tmp_path):
    path = write_jsonl(tmp_path / "legacy.jsonl", [{"prompt": "2+2 ->", "completion": " 4"}] * 2)
    assert detect_format(path) == "prompt-completion"
    conv = read_conversations(path)[0]
    assert [(m.role, m.content) for m in conv.messages] == [("user", "2+2 ->"), ("assistant", " 4")]


def test_alpaca_reader_reads_a_json_array_with_input_history_and_system(tmp_path):
    records = [
        {"instruction": "Translate to French", "input": "cat", "output": "chat"},
        {"instruction": "Say hi", "input": "", "output": "Hi!", "system": "Be warm.",
         "history": [["Who are you?", "A helper."]]},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records, indent=2))
    assert detect_format(path) == "alpaca"
    first, second = read_conversations(path)
    assert first.messages[0].content == "Translate to French\n\ncat" and first.messages[1].content == "chat"
    assert [m.role for m in second.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert second.messages[1].content == "Who are you?" and second.messages[3].content == "Say hi"
    # JSON arrays keep line numbers: record 2 starts on the line of its opening brace.
    lines = [line for line, _ in iter_records(path)]
    assert lines == [2, 7]


def test_sharegpt_reader_maps_roles_and_links_observations_to_calls(tmp_path):
    record = {"system": "You route calls.", "tools": json.dumps([{"name": "weather", "parameters": {}}]),
              "conversations": [
                  {"from": "human", "value": "Weather in Oslo?"},
                  {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Oslo"}})},
                  {"from": "observation", "value": "rain"},
                  {"from": "gpt", "value": "It rains in Oslo."}]}
    path = write_jsonl(tmp_path / "share.jsonl", [record])
    assert detect_format(path) == "sharegpt"
    [conv] = read_conversations(path)
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = conv.messages[2].tool_calls[0]
    assert call.name == "weather" and json.loads(call.arguments) == {"city": "Oslo"}
    assert conv.messages[3].tool_call_id == call.id
    assert conv.tools == [{"type": "function", "function": {"name": "weather", "parameters": {}}}]


def test_sharegpt_unknown_sender_names_the_turn(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "robot", "value": "x"}]}])
    with pytest.raises(DataError) as e:
        read_conversations(path)
    assert e.value.line == 1 and e.value.field == "conversations[0].from" and e.value.code == "unrecognized_role"


def test_csv_reader_with_column_mapping_and_default_names(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('question,answer,sys\n"What is 1+1?","It is 2.",Be exact.\n"Multi\nline?",Yes.,\n')
    mapping = parse_column_map("prompt=question,completion=answer,system=sys")
    first, second = read_conversations(path, column_map=mapping)
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", "Be exact."), ("user", "What is 1+1?"), ("assistant", "It is 2.")]
    assert second.messages[0].content == "Multi\nline?" and second.system is None  # empty system cell: none
    # Without a mapping, well-known column names are found.
    assert read_conversations(path)[0].messages[-1].content == "It is 2."
    # Each row carries the line it starts on (the header is line 1; row 2 spans lines 3-4).
    assert [line for line, _ in iter_records(path)] == [2, 3]


def test_tsv_and_missing_mapped_column(tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_text("q\ta\nHi there\tHello!\n")
    [conv] = read_conversations(path, column_map={"prompt": "q", "completion": "a"})
    assert conv.messages[0].content == "Hi there"
    with pytest.raises(DataError) as e:
        read_conversations(path, column_map={"prompt": "question", "completion": "a"})
    # said once, on the header's line, not once per row
    assert e.value.line == 1 and e.value.code == "missing_field" and "question" in str(e.value)


@pytest.mark.parametrize("spec", ["prompt=q", "prompt=q,completion=", "answer=a,prompt=q,completion=c", "prompt"])
def test_bad_column_mapping_is_refused(spec):
    with pytest.raises(ValueError):
        parse_column_map(spec)


def test_detection_can_be_overridden(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "completion": "c", "messages": "x"}])
    assert detect_format(path) == "chat"
    assert read_conversations(path, fmt="prompt-completion")[0].messages[1].content == "c"


def test_read_conversations_raises_with_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}) + "\n")
    with pytest.raises(DataError) as e:
        read_conversations(path)
    assert (e.value.line, e.value.field, e.value.code) == (1, "messages[1].content", "message_missing_key")
    assert str(path) in str(e.value)


def test_iter_records_streams_problems_as_issues_and_skips_a_bom(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"messages": []}\n\n{oops\n\xff\n')
    items = list(iter_records(path))
    assert items[0] == (1, {"messages": []})
    assert [(line, r.code) for line, r in items[1:] if isinstance(r, Issue)] == [
        (2, "blank_line"), (3, "invalid_json"), (4, "not_utf8")]
    assert items[2][1].column == 2


def test_writers_round_trip_and_refuse_what_does_not_fit(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                      {"role": "assistant", "content": "A"}]}])
    conversations = read_conversations(source)
    for fmt in ("chat", "sharegpt", "alpaca"):
        out = tmp_path / f"out-{fmt}.jsonl"
        write_conversations(out, conversations, fmt)
        assert read_conversations(out)[0].to_openai() == conversations[0].to_openai(), fmt
    assert conversation_to_record(conversations[0], "prompt-completion") == {"prompt": "S\n\nU", "completion": "A"}
    multi = read_conversations(write_jsonl(tmp_path / "multi.jsonl", [{"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}]))
    with pytest.raises(ValueError, match="one user turn"):
        conversation_to_record(multi[0], "prompt-completion")


def test_an_unparseable_csv_row_is_reported_and_the_rows_after_it_are_read(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"prompt,completion\nshort,fine\nbroken\rcell,x\nlast,row\n")
    items = list(iter_records(path))
    assert items[0] == (2, {"prompt": "short", "completion": "fine"})
    assert isinstance(items[1][1], Issue) and items[1][1].code == "invalid_csv" and items[1][0] == 3
    assert "carriage return" in items[1][1].message
    assert items[2] == (4, {"prompt": "last", "completion": "row"})
