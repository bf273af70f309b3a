"""The streaming readers: every record comes out, readable or not, with its text and error."""

import io
import json

import pytest

from explore import parsers
from explore.parsers import FormatError, check_head, reader_for
from explore.parsers.csv_reader import LineBlocks


def read(fmt: str, data: bytes, *, max_record_bytes: int = 10_000, chunk_bytes: int | None = None):
    # A tiny read buffer, so that records cross buffer boundaries.
    reader = reader_for(
        fmt, io.BufferedReader(io.BytesIO(data), 16), max_record_bytes=max_record_bytes
    )
    if chunk_bytes:
        reader.chunk_bytes = chunk_bytes
    return reader, list(reader)


def payload(record):
    return None if record[2] is None else json.loads(record[2])


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_header_gives_the_keys_and_every_value_is_text():
    reader, records = read("csv", b"id,name,amount\n1,Alice,12.50\n2,Bob,7\n")
    assert reader.header == ["id", "name", "amount"]
    assert [(r[0], r[1], r[3]) for r in records] == [(2, "1,Alice,12.50", ""), (3, "2,Bob,7", "")]
    assert payload(records[0]) == {"id": "1", "name": "Alice", "amount": "12.50"}


def test_csv_payload_is_canonical_json():
    _, records = read("csv", b'b,a,c%s\n1,"x""y",\xc3\xa9\\\n')
    # Keys sorted, no spaces, non-ASCII kept: the text payload_hash is taken of.
    assert records[0][2] == '{"a":"x\\"y","b":"1","c%s":"é\\\\"}'
    assert records[0][2] == json.dumps(
        payload(records[0]), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def test_csv_quoted_line_breaks_make_one_record_numbered_by_its_first_line():
    data = b'id,note\n1,"two\nlines"\n2,plain\n'
    _, records = read("csv", data)
    assert [(r[0], r[1]) for r in records] == [(2, '1,"two\nlines"'), (4, "2,plain")]
    assert payload(records[0])["note"] == "two\nlines"


def test_csv_wrong_field_count_is_kept_with_its_error():
    _, records = read("csv", b"id,name\n1,Alice\n2,Bob,extra\n3\n")
    assert records[1] == (3, "2,Bob,extra", None, "expected 2 fields as in the header, found 3")
    assert records[2] == (4, "3", None, "expected 2 fields as in the header, found 1")


def test_csv_blank_lines_are_counted_not_kept():
    reader, records = read("csv", b"id,name\r\n1,a\r\n\r\n   \r\n2,b\r\n")
    assert [r[0] for r in records] == [2, 5]
    assert reader.blank_lines == 2
    assert records[0][1] == "1,a"  # the line break is not part of the text


def test_csv_latin1_line_in_utf8_file_is_kept_with_escapes_and_the_error():
    data = "id,name\n1,Zoë\n".encode() + "2,Zoë\n".encode("latin-1") + b"3,ok\n"
    _, records = read("csv", data)
    assert records[0][3] == "" and payload(records[0])["name"] == "Zoë"
    line, raw, value, error = records[1]
    assert (line, raw, value) == (3, "2,Zo\\xeb", None)
    assert error.startswith("line 3 is not valid UTF-8")
    assert records[2][0] == 4 and records[2][3] == ""


def test_csv_byte_order_mark_and_semicolons():
    reader, records = read("csv", "\ufeffid;name\n1;Ann\n".encode())
    assert reader.header == ["id", "name"]
    assert payload(records[0]) == {"id": "1", "name": "Ann"}


def test_csv_over_long_line_is_cut_and_reported_and_reading_goes_on():
    data = b"id,text\n1," + b"x" * 500 + b"\n2,short\n"
    _, records = read("csv", data, max_record_bytes=100)
    assert records[0][0] == 2 and records[0][2] is None
    assert "longer than 100 bytes" in records[0][3]
    assert len(records[0][1]) <= 101
    assert records[1][:2] == (3, "2,short") and records[1][3] == ""


def test_csv_unclosed_quote_is_bounded_by_the_record_size_limit():
    data = b'id,text\n1,"never closed\n' + b"more text\n" * 50 + b"2,ok\n"
    _, records = read("csv", data, max_record_bytes=120)
    # Whatever the split, no line is lost: every physical line is in some record's text.
    assert sum(r[1].count("\n") + 1 for r in records) >= 50
    assert records[0][2] is None and records[0][3]


def test_csv_a_quote_that_swallows_lines_is_reported_as_such():
    # Line 3 opens a quote; the next quote is on line 6: lines 3-6 read as one value.
    data = (
        b'id,name,city\n1,Ann,Paris\n2,"Bob,Lyon\n3,Cy,Nice\n4,Di,Metz\n5,Ed,"Rome"\n6,Flo,Oslo\n'
    )
    _, records = read("csv", data)
    line, _, value, error = records[1]
    assert (line, value) == (3, None)
    assert error == (
        "an opening quote at line 3 is never closed where it should be: lines 3-6 were read "
        "as one record (expected 3 fields as in the header, found 2)"
    )
    assert records[2][0] == 7 and records[2][3] == ""  # reading goes on after it


# --- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_objects_and_each_kind_of_bad_line():
    data = b'{"a": 1, "b": [1, 2]}\n{"a": NaN}\n[1, 2]\n\n{"name": "\xe9"}\n{broken\n{"last": true}'
    reader, records = read("jsonl", data)
    assert [r[0] for r in records] == [1, 2, 3, 5, 6, 7]
    assert payload(records[0]) == {"a": 1, "b": [1, 2]}
    assert records[1][2] is None and "NaN is not valid JSON" in records[1][3]
    assert records[2][3] == "expected a JSON object, found an array"
    assert records[3][1] == '{"name": "\\xe9"}' and "not valid UTF-8" in records[3][3]
    assert records[4][1] == "{broken" and records[4][3].startswith("invalid JSON")
    assert payload(records[5]) == {"last": True}
    assert reader.blank_lines == 1


@pytest.mark.parametrize(
    "bad",
    ['{"n": 1e999}', '{"n": -1e999}', '{"n": [1, {"m": 1E400}]}', '{"n": NaN}', '{"n": -Infinity}'],
)
def test_jsonl_out_of_range_number_is_an_unreadable_line_and_the_rest_reads(bad):
    """Found by an outside probe: 1e999 failed the whole batch (ValueError from the encoder)."""
    _, records = read("jsonl", b'{"a": 1}\n' + bad.encode() + b'\n{"a": 3}\n')
    assert [r[0] for r in records] == [1, 2, 3]
    assert payload(records[0]) == {"a": 1} and payload(records[2]) == {"a": 3}
    assert records[1][1] == bad and records[1][2] is None
    assert "out of range" in records[1][3] or "is not valid JSON" in records[1][3]


@pytest.mark.parametrize("bad", ["1e999", "-1e999", "NaN", "Infinity"])
def test_json_array_out_of_range_number_is_an_unreadable_element(bad):
    data = f'[{{"a": 1}}, {{"n": {bad}, "m": "x"}}, {{"a": 3}}]'.encode()
    _, records = read("json", data, chunk_bytes=5)
    assert [payload(r) for r in records] == [{"a": 1}, None, {"a": 3}]
    assert records[1][1] == f'{{"n": {bad}, "m": "x"}}'
    if bad.endswith("e999"):
        assert records[1][3] == parsers.OUT_OF_RANGE_ERROR
    else:
        assert f"{bad} is not valid JSON" in records[1][3]


def test_jsonl_raw_text_is_the_line_as_received():
    _, records = read("jsonl", b'  {"b":2,   "a":1}  \r\n')
    assert records[0][1] == '  {"b":2,   "a":1}  '
    assert records[0][2] == '{"a":1,"b":2}'


# --- JSON array ------------------------------------------------------------------------------


def test_json_array_elements_keep_their_exact_text_across_chunks():
    elements = [{"id": i, "text": f"row {i}, with [brackets] and {{braces}}"} for i in range(50)]
    data = json.dumps(elements, indent=2).encode()
    reader, records = read("json", data, chunk_bytes=7)
    assert [r[0] for r in records] == list(range(1, 51))
    assert all(r[3] == "" for r in records)
    assert [payload(r) for r in records] == elements
    assert records[3][1] == json.dumps(elements[3], indent=2).replace("\n", "\n  ")
    assert reader.warnings == []


def test_json_array_bad_elements_do_not_stop_the_file():
    data = (
        b'[{"a": 1}, {"b": [1, 2}, {"c": 3}, 5, {"d": "x"} junk, , {"e": "\xff"}, '
        b'{"s": "a \\" ] } , ["}, {"f": 6}]'
    )
    _, records = read("json", data, chunk_bytes=5)
    by_line = {r[0]: r for r in records}
    assert payload(by_line[1]) == {"a": 1}
    assert by_line[2][1] == '{"b": [1, 2}' and by_line[2][3].startswith("invalid JSON")
    assert payload(by_line[3]) == {"c": 3}
    assert by_line[4][3] == "expected a JSON object, found a number"
    assert by_line[5][1] == '{"d": "x"} junk' and "unexpected text" in by_line[5][3]
    assert by_line[6][1] == "" and by_line[6][3].startswith("invalid JSON")
    assert by_line[7][1] == '{"e": "\\xff"}' and "not valid UTF-8" in by_line[7][3]
    assert payload(by_line[8]) == {"s": 'a " ] } , ['}
    assert payload(by_line[9]) == {"f": 6}
    assert len(records) == 9


def test_json_array_truncated_file_keeps_what_it_has_and_warns():
    reader, records = read("json", b'[{"a": 1}, {"a": 2')
    assert payload(records[0]) == {"a": 1}
    assert records[1][1] == '{"a": 2' and "the file ends inside this element" in records[1][3]
    assert any("closing ']'" in warning for warning in reader.warnings)


def test_json_array_text_after_the_array_is_kept():
    _, records = read("json", b'[{"a": 1}]\n  trailing words\n')
    assert records[-1] == (2, "trailing words", None, "text after the end of the array")


def test_json_array_over_long_element_is_cut_and_the_next_ones_read():
    data = b'[{"a": 1}, {"big": "' + b"y" * 5000 + b'", "n": [1, {"x": "]"}]}, {"b": 2}]'
    _, records = read("json", data, max_record_bytes=300, chunk_bytes=64)
    assert payload(records[0]) == {"a": 1}
    assert records[1][2] is None and "longer than 300 bytes" in records[1][3]
    assert len(records[1][1]) == 300
    assert payload(records[2]) == {"b": 2}


def test_json_file_that_is_not_an_array_is_a_format_error():
    with pytest.raises(FormatError, match="must hold an array"):
        read("json", b'{"a": 1}')


# --- Checks on the first bytes (refusals before anything is written) -----------------------


@pytest.mark.parametrize(
    ("fmt", "head", "message"),
    [
        ("csv", b"", "empty"),
        ("csv", b"  \n\n", "empty"),
        ("csv", b"id,name\n", "header row but no records"),
        ("csv", b"\nid,name\n1,a\n", "first line is empty"),
        ("csv", b"id,,name\n1,2,3\n", "column 2 has no name"),
        ("csv", b"id,id\n1,2\n", "more than once: id"),
        ("csv", b"1001,Alice,alice@example.com\n1002,Bob,bob@example.com\n", "header row missing"),
        ("json", b'{"a": 1}\n', "must hold an array"),
        ("json", b"[ ]\n", "array is empty"),
        ("jsonl", b"[1, 2]", "looks like a JSON array"),
    ],
)
def test_check_head_refuses(fmt, head, message):
    with pytest.raises(FormatError, match=message) as refused:
        check_head(head, fmt, complete=True)
    for value in (b"1001", b"Alice", b"alice@example.com"):
        assert value.decode() not in str(refused.value)


def test_headerless_csv_is_recognised_from_the_contract():
    head = b"1001,Ann,ann@example.com\n"
    with pytest.raises(FormatError, match="names none of the contract's fields") as refused:
        check_head(head, "csv", complete=True, contract_fields=["id", "name", "email"])
    # The batch's error is shown wherever the batch is: it describes the line, never quotes it.
    assert str(refused.value) == (
        "the first line names none of the contract's fields (email, id, name) in its 3 "
        "columns: is the header row missing?"
    )
    check_head(b"id,name\n1,Ann\n", "csv", complete=True, contract_fields=["id", "name", "email"])


def test_format_from_name_and_content():
    assert parsers.format_from_name("Orders 2026.CSV.gz") == "csv"
    assert parsers.format_from_name("events.ndjson") == "jsonl"
    assert parsers.format_from_name("export.json") == "json"
    assert parsers.format_from_name("notes.txt") is None
    assert parsers.sniff_format(b'  [{"a": 1}]') == "json"
    assert parsers.sniff_format(b'{"a": 1}\n') == "jsonl"
    assert parsers.sniff_format(b"a,b\n") is None


@pytest.mark.parametrize("block_bytes", [1, 7, 64])
def test_csv_reads_the_same_whatever_the_block_boundaries(monkeypatch, block_bytes):
    data = (
        b'id,note\n1,"spans\nthree\nlines"\n'
        + "2,Zoë\n".encode("latin-1")
        + b"3,"
        + b"y" * 150
        + b"\n\n"
        + b'4,"quoted, comma"\r\n5,a,b\n6,last without a break'
    )
    expected = read("csv", data, max_record_bytes=100)[1]
    monkeypatch.setattr(LineBlocks, "block_bytes", block_bytes)
    assert read("csv", data, max_record_bytes=100)[1] == expected
    assert [r[0] for r in expected] == [2, 5, 6, 8, 9, 10]
    assert expected[0][1] == '1,"spans\nthree\nlines"'
    assert expected[1][2] is None and "not valid UTF-8" in expected[1][3]
    assert expected[2][2] is None and "longer than 100 bytes" in expected[2][3]
    assert json.loads(expected[3][2]) == {"id": "4", "note": "quoted, comma"}
    assert expected[4][3] == "expected 2 fields as in the header, found 3"
    assert expected[5][1] == "6,last without a break" and expected[5][3] == ""
