"""The reader for a format."""

from typing import BinaryIO

from explore.parsers.csv_reader import CsvReader
from explore.parsers.json_array_reader import JsonArrayReader
from explore.parsers.jsonl_reader import JsonLinesReader
from explore.parsers.records import CSV, FORMATS, JSON, JSONL, FormatError, Reader

READERS = {CSV: CsvReader, JSONL: JsonLinesReader, JSON: JsonArrayReader}


def reader_for(
    fmt: str, stream: BinaryIO, *, max_record_bytes: int, max_lines: int | None = None
) -> Reader:
    try:
        return READERS[fmt](stream, max_record_bytes=max_record_bytes, max_lines=max_lines)
    except KeyError:
        raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}") from None
