"""JSON as Atlas reads and writes it: NaN and Infinity refused, one canonical text per
record, an object required."""

import json

from explore.parsers.records import Record


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) do not.
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
raw_decode = _decoder.raw_decode
decode = _decoder.decode
# Canonical text: the same record gives the same text (and payload_hash) whatever the
# key order or spacing it arrived with.
canonical_json = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def _kind(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


OUT_OF_RANGE_ERROR = (
    "a number is out of range: it overflows a double to infinity (e.g. 1e999 or -1e999), "
    "which JSON and PostgreSQL's jsonb cannot hold"
)


def object_record(line_number: int, raw: str, value) -> Record:
    """The record of a decoded value: its canonical text, or why it cannot be one."""
    if type(value) is not dict:
        return (line_number, raw, None, f"expected a JSON object, found {_kind(value)}")
    try:
        return (line_number, raw, canonical_json(value), "")
    except ValueError:
        # Python reads 1e999 as inf (NaN and Infinity literals are refused while
        # decoding); canonical_json refuses to write it. Found by an outside probe: one
        # such number failed the whole batch after the API had answered 202.
        return (line_number, raw, None, OUT_OF_RANGE_ERROR)
