"""Streaming readers for the formats Atlas ingests: CSV, JSON Lines and a JSON array.

Each reader takes a binary stream (already decompressed) and yields one tuple per
record, in file order:

    (line_number, raw_text, payload_json, error)

- `line_number`: the physical line a CSV or JSON Lines record starts on (a CSV
  header is line 1, so data starts at 2); for a JSON array, the element's position
  in the array (1, 2, ...).
- `raw_text`: the record's text as received, without its line break. Bytes that
  are not UTF-8 are shown as `\\xNN` escapes.
- `payload_json`: the record as canonical JSON text (keys sorted, no spaces,
  non-ASCII kept), or None when the record could not be read.
- `error`: "" or why the record could not be read.

Every record is yielded, readable or not: nothing is skipped except blank lines,
which are counted in `reader.blank_lines`. Memory stays bounded whatever the file
size: the readers hold one record (at most `max_record_bytes`; longer ones are
cut there and reported) and one read buffer.

Problems with the file as a whole (no header, not an array, ...) raise FormatError.
`check_head` finds them from the first bytes, so that a bad file is refused before
anything is stored. A reader given `max_lines` raises LimitExceededError on the line
past it (lines after a CSV header, blank ones too; a JSON array's elements): a file
far larger than it looked (a decompression bomb) stops there, whatever it holds.

The modules: `records` (the record, the formats, the errors, the readers' base),
`json_values` (JSON as Atlas reads and writes it), `head` (format detection and the
checks on a file's first bytes), one module per reader (`csv_reader`, `jsonl_reader`,
`json_array_reader`) and `readers` (the reader for a format). The names below are the
package's public face, what the loader (`explore.services`) reads.
"""

from explore.parsers.head import HEAD_BYTES, check_head, format_from_name, sniff_format
from explore.parsers.json_values import OUT_OF_RANGE_ERROR, canonical_json
from explore.parsers.readers import READERS, reader_for
from explore.parsers.records import (
    CSV,
    EXTENSIONS,
    FORMATS,
    JSON,
    JSONL,
    FormatError,
    LimitExceededError,
    Reader,
    Record,
)

__all__ = [
    "CSV",
    "EXTENSIONS",
    "FORMATS",
    "HEAD_BYTES",
    "JSON",
    "JSONL",
    "OUT_OF_RANGE_ERROR",
    "READERS",
    "FormatError",
    "LimitExceededError",
    "Reader",
    "Record",
    "canonical_json",
    "check_head",
    "format_from_name",
    "reader_for",
    "sniff_format",
]
