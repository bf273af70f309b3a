"""Format detection and the first bytes: a file that cannot be loaded is refused, with a
clear reason, before anything of it is stored."""

import codecs
import csv
import re
from collections.abc import Collection

from explore.parsers.records import (
    BOM,
    CSV,
    EXTENSIONS,
    FORMATS,
    JSON,
    JSONL,
    FormatError,
    encoding_error,
)

HEAD_BYTES = 64 * 1024  # what check_head looks at


def format_from_name(filename: str) -> str | None:
    name = filename.lower().removesuffix(".gz").removesuffix(".gzip")
    for extension, fmt in EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    return None


def sniff_format(head: bytes) -> str | None:
    """A guess from the content, for a name without a known extension."""
    text = head.decode("utf-8", "replace").lstrip(BOM + " \t\r\n")
    if text.startswith("["):
        return JSON
    if text.startswith("{"):
        return JSONL
    return None


def csv_delimiter(header_line: str) -> str:
    """The delimiter a header line uses: the most frequent of , ; tab |, comma on a tie."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


_LOOKS_LIKE_DATA = re.compile(r"^-?\d+([.,]\d+)?$|^\d{4}-\d{2}-\d{2}|@")


def parse_header(header_line: str) -> tuple[list[str], str]:
    """Field names and delimiter of a CSV header line; FormatError when it is no header."""
    line = header_line.removeprefix(BOM).rstrip("\r\n")
    if not line.strip():
        raise FormatError(
            "the first line is empty: a CSV file starts with a header row naming its columns"
        )
    delimiter = csv_delimiter(line)
    try:
        names = [name.strip() for name in next(csv.reader([line], delimiter=delimiter))]
    except csv.Error as exc:
        # Found by fuzzing (a 500): a carriage return inside the header row, e.g. a file
        # whose lines end with CR alone.
        if "\r" in line:
            raise FormatError(
                "the header row holds a carriage return (CR) that does not end a line: "
                "lines must end with LF or CR LF"
            ) from None
        raise FormatError(f"the header row cannot be read as CSV: {exc}") from None
    for position, name in enumerate(names, start=1):
        if not name:
            raise FormatError(f"the header's column {position} has no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise FormatError(f"the header names these columns more than once: {', '.join(duplicates)}")
    return names, delimiter


def check_header(names: list[str], contract_fields: Collection[str]) -> None:
    """Refuse a header-less file: a first line of data instead of column names."""
    # The message goes to the batch's error, shown wherever the batch is: a first line
    # of data is values, so it is described (how many columns, which one), never quoted.
    if contract_fields:
        if not set(names) & set(contract_fields):
            raise FormatError(
                "the first line names none of the contract's fields "
                f"({', '.join(sorted(contract_fields))}) in its {len(names)} columns: is the "
                "header row missing?"
            )
        return
    values = [position for position, name in enumerate(names, 1) if _LOOKS_LIKE_DATA.search(name)]
    if values:
        raise FormatError(
            "the first line looks like data, not a header naming the columns (column "
            f"{values[0]} holds a number, a date or an address): is the header row missing?"
        )


def _looks_utf16(head: bytes) -> bool:
    """A UTF-16 (or UTF-32) byte order mark, or NUL bytes at every other position."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    sample = head[:1024]
    if len(sample) < 8:
        return False
    even, odd = sample[0::2], sample[1::2]
    # ASCII text in UTF-16: one byte of each pair is NUL, the other almost never.
    return (odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even)) or (
        even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd)
    )


def check_head(
    head: bytes, fmt: str, *, complete: bool, contract_fields: Collection[str] = ()
) -> None:
    """Refuse, with a clear reason, a file that cannot be loaded, from its first bytes.

    `head` is the start of the decompressed content; `complete` says it is all of it.
    """
    if _looks_utf16(head):
        # Found by fuzzing: UTF-16 was refused with a misleading reason (no header, not
        # an array), naming "i\x00d\x00" as the columns.
        raise FormatError(
            "the file is encoded in UTF-16 (or UTF-32), not UTF-8: export or save it as "
            "UTF-8 and send it again"
        )
    if not head.strip() or head.decode("utf-8", "replace").strip(BOM + " \t\r\n") == "":
        if complete:
            raise FormatError("the file is empty")
        raise FormatError(f"the first {len(head)} bytes are blank: this is not a {fmt} file")
    if fmt == CSV:
        end = head.find(b"\n")
        if end < 0 and not complete:
            raise FormatError(f"the header row is longer than {len(head)} bytes")
        first = head if end < 0 else head[: end + 1]
        try:
            header_line = first.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(encoding_error(exc, "the header row")) from None
        names, _ = parse_header(header_line)
        check_header(names, contract_fields)
        if complete and (end < 0 or not head[end + 1 :].strip()):
            raise FormatError("the file holds a header row but no records")
    elif fmt == JSON:
        text = head.decode("utf-8", "replace").lstrip(BOM + " \t\r\n")
        if not text.startswith("["):
            raise FormatError(
                "a JSON file must hold an array of records, starting with '['; "
                "for one object per line, send it as JSON Lines (.jsonl)"
            )
        if complete and re.fullmatch(r"\[\s*\]\s*", text):
            raise FormatError("the JSON array is empty: there are no records")
    elif fmt == JSONL:
        text = head.decode("utf-8", "replace").lstrip(BOM + " \t\r\n")
        if text.startswith("[") and complete and text.rstrip().endswith("]"):
            raise FormatError(
                "this looks like a JSON array, not JSON Lines: send it as JSON (.json)"
            )
    else:
        raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
