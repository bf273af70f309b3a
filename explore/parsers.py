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
"""

import codecs
import csv
import itertools
import json
import re
from collections.abc import Collection, Iterator
from json.encoder import encode_basestring
from operator import itemgetter
from typing import BinaryIO

Record = tuple[int, str, str | None, str]

CSV, JSONL, JSON = "csv", "jsonl", "json"
FORMATS = (CSV, JSONL, JSON)
EXTENSIONS = {".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL, ".json": JSON}
HEAD_BYTES = 64 * 1024  # what check_head looks at
BOM = "\ufeff"


class FormatError(ValueError):
    """The file as a whole cannot be read in its format; the message says why."""


class LimitExceededError(Exception):
    """The load went past one of its caps; the message names the cap and its setting."""


def too_many_lines(limit: int, what: str = "lines") -> LimitExceededError:
    return LimitExceededError(
        f"the file holds more than {limit:,} {what}, the limit per batch "
        "(ATLAS_MAX_LINES_PER_BATCH); nothing of it was kept: split it into smaller files "
        "or raise the limit"
    )


# --- JSON helpers ----------------------------------------------------------------------


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) do not.
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_raw_decode = _decoder.raw_decode
_decode = _decoder.decode
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


def _object_record(line_number: int, raw: str, value) -> Record:
    if type(value) is not dict:
        return (line_number, raw, None, f"expected a JSON object, found {_kind(value)}")
    try:
        return (line_number, raw, canonical_json(value), "")
    except ValueError:
        # Python reads 1e999 as inf (NaN and Infinity literals are refused while
        # decoding); canonical_json refuses to write it. Found by an outside probe: one
        # such number failed the whole batch after the API had answered 202.
        return (line_number, raw, None, OUT_OF_RANGE_ERROR)


def _encoding_error(exc: UnicodeDecodeError, what: str) -> str:
    return f"{what} is not valid UTF-8 (byte {exc.start + 1}: {exc.reason})"


# --- Format detection and the first bytes -------------------------------------------------


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
    if contract_fields:
        if not set(names) & set(contract_fields):
            raise FormatError(
                "the first line names none of the contract's fields "
                f"({', '.join(sorted(contract_fields))}): is the header row missing? "
                f"It reads: {', '.join(names)[:200]}"
            )
        return
    values = [name for name in names if _LOOKS_LIKE_DATA.search(name)]
    if values:
        raise FormatError(
            "the first line looks like data, not a header naming the columns "
            f"(e.g. {values[0][:60]!r}): is the header row missing?"
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
            raise FormatError(_encoding_error(exc, "the header row")) from None
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


# --- Readers -------------------------------------------------------------------------


class _Reader:
    def __init__(self, stream: BinaryIO, *, max_record_bytes: int, max_lines: int | None = None):
        self.stream = stream
        self.max_record_bytes = max_record_bytes
        self.max_lines = max_lines
        self.blank_lines = 0
        self.warnings: list[str] = []
        self.header: list[str] = []

    @property
    def lines_read(self) -> int:
        """Lines (a JSON array: elements) read so far, blank ones too; for progress."""
        return 0

    def __iter__(self) -> Iterator[Record]:
        raise NotImplementedError


def _strip_newline(text: str) -> str:
    if text.endswith("\n"):
        return text[:-2] if text.endswith("\r\n") else text[:-1]
    return text


def _skip_rest_of_line(readline, data: bytes, limit: int) -> bytes:
    """Read past the rest of an over-long line; keep its first `limit` bytes and the break."""
    while True:
        more = readline(limit)
        if not more or more.endswith(b"\n"):
            return data + b"\n"


_LINE = re.compile(r"[^\n]*\n")


class _LineBlocks:
    """The file's lines (decoded, with their line breaks), a block of about 1 MiB at a time.

    Reading, splitting and decoding happen per block, in C; csv.reader then pulls
    the lines through itertools.chain, with no Python call per line. `text(start,
    end)` gives back a record's lines for raw_text, and `problem(start, end)`
    whatever was wrong with them (bad UTF-8, a line over the size limit). Blocks
    before the record being read (`first_needed`) are let go.
    """

    block_bytes = 1 << 20

    def __init__(self, stream: BinaryIO, max_bytes: int, max_lines: int | None = None):
        self._read = stream.read
        self._limit = max_bytes
        self._max_lines = max_lines  # of the whole file, counted per block
        self.blocks: list[tuple[int, list[str]]] = []  # (number of its first line, lines)
        self.problems: dict[int, str] = {}
        self.lines_read = 0
        self.first_needed = 1

    def __iter__(self) -> Iterator[list[str]]:
        carry = b""
        skipping = False  # inside an over-long line, past the part kept
        while True:
            data = self._read(self.block_bytes)
            if not data:
                if carry:
                    yield self._block(*self._decode(carry))  # a last line without a break
                return
            if skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    continue
                data, skipping = data[newline + 1 :], False
            if carry:
                data = carry + data
            end = data.rfind(b"\n") + 1
            if not end:  # no whole line yet
                carry = data
                if len(carry) > self._limit:
                    number = self.lines_read + 1
                    self.problems[number] = self._too_long(number)
                    yield self._block(*self._decode(carry[: self._limit] + b"\n"))
                    carry, skipping = b"", True
                continue
            body, carry = data[:end], data[end:]
            text, dirty = self._decode(body)
            yield self._block(_LINE.findall(text), dirty)

    @staticmethod
    def _decode(data: bytes) -> tuple[str, bool]:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            # Rare: the bad lines are found one by one; surrogateescape keeps their bytes.
            return data.decode("utf-8", "surrogateescape"), True

    def _too_long(self, number: int) -> str:
        return f"line {number} is longer than {self._limit} bytes; its text is cut at that length"

    def _block(self, lines: list[str] | str, dirty: bool) -> list[str]:
        if isinstance(lines, str):
            lines = [lines]
        first = self.lines_read + 1
        if dirty or (lines and max(map(len, lines)) > self._limit + 1):
            for offset, line in enumerate(lines):
                number = first + offset
                if len(line) > self._limit + 1:
                    self.problems.setdefault(number, self._too_long(number))
                    line = lines[offset] = line[: self._limit] + "\n"
                if dirty and not line.isascii():
                    raw = line.encode("utf-8", "surrogateescape")
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        self.problems.setdefault(number, _encoding_error(exc, f"line {number}"))
                        lines[offset] = raw.decode("utf-8", "backslashreplace")
        if first == 1 and lines:
            lines[0] = lines[0].removeprefix(BOM)
        self.lines_read += len(lines)
        if self._max_lines is not None and self.lines_read > self._max_lines:
            raise too_many_lines(self._max_lines - 1)  # CsvReader counts its header in
        self.blocks = [
            block for block in self.blocks if block[0] + len(block[1]) > self.first_needed
        ]
        self.blocks.append((first, lines))
        return lines

    def text(self, start: int, end: int) -> str:
        """Lines start..end (numbered from 1) as one text, without the last line break."""
        first, lines = self.blocks[-1]
        if start == end and start >= first:
            return lines[start - first].rstrip("\r\n")
        parts = []
        for block_first, block_lines in self.blocks:
            low, high = max(start, block_first), min(end, block_first + len(block_lines) - 1)
            parts.extend(block_lines[low - block_first : high - block_first + 1])
        return "".join(parts).rstrip("\r\n")

    def problem(self, start: int, end: int) -> str:
        for number in range(start, end + 1):
            if number in self.problems:
                return self.problems.pop(number)
        return ""


class CsvReader(_Reader):
    """CSV with a header row; each record's payload maps header name -> text value."""

    @property
    def lines_read(self) -> int:
        source = getattr(self, "_source", None)
        return max(source.lines_read - 1, 0) if source is not None else 0

    def __iter__(self) -> Iterator[Record]:
        limit = None if self.max_lines is None else self.max_lines + 1  # and the header
        source = self._source = _LineBlocks(self.stream, self.max_record_bytes, limit)
        lines = itertools.chain.from_iterable(source)
        first = next(lines, None)
        if first is None:
            raise FormatError("the file is empty")
        if 1 in source.problems:
            raise FormatError(source.problem(1, 1))
        names, delimiter = parse_header(first)
        self.header = names
        # Payload text from a template: keys sorted and JSON-quoted once, values
        # quoted per row in C. The same text json.dumps(sort_keys=True) would give,
        # several times faster.
        order = sorted(range(len(names)), key=names.__getitem__)
        template = (
            "{"
            + ",".join(encode_basestring(names[i]).replace("%", "%%") + ":%s" for i in order)
            + "}"
        )
        pick = itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
        columns = len(names)
        # Bounds what an unclosed quote can swallow (a process-wide setting, set per file).
        csv.field_size_limit(self.max_record_bytes)
        reader = csv.reader(lines, delimiter=delimiter)
        text, problems = source.text, source.problems
        done = 1  # lines handed out so far: the header
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, done = done + 1, reader.line_num + 1
                yield (start, text(start, done), None, source.problem(start, done) or f"CSV: {exc}")
                continue
            start, done = done + 1, reader.line_num + 1  # +1: the header is not the reader's
            source.first_needed = start
            if problems and (problem := source.problem(start, done)):
                yield (start, text(start, done), None, problem)
            elif len(row) == columns:
                yield (
                    start,
                    text(start, done),
                    template % tuple(map(encode_basestring, pick(row))),
                    "",
                )
            elif not row or (len(row) == 1 and not row[0].strip()):
                self.blank_lines += 1
            else:
                yield (
                    start,
                    text(start, done),
                    None,
                    f"expected {columns} fields as in the header, found {len(row)}",
                )


class JsonLinesReader(_Reader):
    """One JSON object per line."""

    _line_number = 0

    @property
    def lines_read(self) -> int:
        return self._line_number

    def __iter__(self) -> Iterator[Record]:
        readline = self.stream.readline
        limit = self.max_record_bytes
        max_lines = self.max_lines if self.max_lines is not None else float("inf")
        line_number = 0
        while True:
            data = readline(limit)
            if not data:
                return
            line_number += 1
            self._line_number = line_number
            if line_number > max_lines:
                raise too_many_lines(self.max_lines)
            problem = ""
            if len(data) >= limit and not data.endswith(b"\n"):
                data = _skip_rest_of_line(readline, data, limit)
                problem = (
                    f"line {line_number} is longer than {limit} bytes; "
                    "its text is cut at that length"
                )
            try:
                raw = _strip_newline(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raw = _strip_newline(data.decode("utf-8", "backslashreplace"))
                problem = problem or _encoding_error(exc, f"line {line_number}")
            if line_number == 1:
                raw = raw.removeprefix(BOM)
            if problem:
                yield (line_number, raw, None, problem)
                continue
            text = raw.strip()
            if not text:
                self.blank_lines += 1
                continue
            try:
                value = _decode(text)
            except (ValueError, RecursionError) as exc:
                yield (line_number, raw, None, f"invalid JSON: {exc}")
                continue
            yield _object_record(line_number, raw, value)


_WHITESPACE = re.compile(r"[ \t\r\n]*")
_STRUCTURE = re.compile(r'[\[\]{},"]')
_STRING_STOP = re.compile(r'["\\\n]')


class _ElementEnd:
    """Finds where an array element ends: the next ',' or ']' outside strings and nesting.

    Only used for elements json cannot read. Tolerant, so that one broken element
    does not swallow those after it: a closing bracket closes back to its matching
    opener (and is ignored when none is open), and a line break ends an
    unterminated string (JSON strings cannot hold one). Keeps its state across
    buffers, to skip an over-long element without holding it.
    """

    def __init__(self):
        self.stack: list[str] = []
        self.in_string = False
        self.escaped = False

    def find(self, buf: str, i: int) -> int | None:
        """Index of the delimiter in buf from i, or None: the element goes on past buf."""
        stack, end = self.stack, len(buf)
        while i < end:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    i += 1
                    continue
                match = _STRING_STOP.search(buf, i)
                if match is None:
                    return None
                i = match.end()
                if match.group() == "\\":
                    self.escaped = True
                else:
                    self.in_string = False
                continue
            match = _STRUCTURE.search(buf, i)
            if match is None:
                return None
            char, i = match.group(), match.end()
            if char == '"':
                self.in_string = True
            elif char in "[{":
                stack.append(char)
            elif char == ",":
                if not stack:
                    return match.start()
            else:
                opener = "[" if char == "]" else "{"
                if opener in stack:
                    while stack.pop() != opener:
                        pass
                elif not stack and char == "]":
                    return match.start()
        return None


class JsonArrayReader(_Reader):
    """A JSON array whose elements are the records, read a chunk at a time.

    Each element is read by json's C scanner (raw_decode), which also gives its
    exact text for raw_text. An element it cannot read is delimited by _ElementEnd
    and kept with the error; reading goes on with the next element.
    (ijson streams too, but gives neither an element's original text nor a way to
    go on after a syntax error.)
    """

    chunk_bytes = 1 << 20
    _index = 0

    @property
    def lines_read(self) -> int:
        return self._index

    def __iter__(self) -> Iterator[Record]:
        max_elements = self.max_lines if self.max_lines is not None else float("inf")
        self._read = self.stream.read
        # Undecodable bytes become lone surrogates here, so that one bad element does
        # not stop the file; _checked_text turns them into a per-element error.
        self._text_decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf, self.pos, self.eof = "", 0, False
        if not self._skip_whitespace():
            raise FormatError("the file is empty")
        if self.buf[self.pos] == BOM:
            self.pos += 1
            self._skip_whitespace()
        if self.pos >= len(self.buf) or self.buf[self.pos] != "[":
            raise FormatError(
                "a JSON file must hold an array of records, starting with '['; "
                "for one object per line, send it as JSON Lines (.jsonl)"
            )
        self.pos += 1
        index = 0
        while True:
            if not self._skip_whitespace():
                self.warnings.append(
                    "the file ends before the array's closing ']': it may be truncated"
                )
                return
            if self.buf[self.pos] == "]":
                if index:
                    self.warnings.append("a comma stands before the array's closing ']'")
                self.pos += 1
                break
            index += 1
            if index > max_elements:
                raise too_many_lines(self.max_lines, "elements")
            self._index = index
            yield self._element(index)
            if not self._skip_whitespace():
                self.warnings.append(
                    "the file ends before the array's closing ']': it may be truncated"
                )
                return
            char = self.buf[self.pos]
            self.pos += 1
            if char == "]":
                break
            # otherwise a ',' (_element stops only at ',' or ']')
        if self._skip_whitespace():
            index += 1
            yield self._trailing_text(index)

    def _more(self) -> bool:
        """Drop the text before pos and append the next chunk; False once at the end."""
        if self.eof:
            return False
        data = self._read(self.chunk_bytes)
        self.buf = self.buf[self.pos :]
        self.pos = 0
        if data:
            self.buf += self._text_decoder.decode(data)
        else:
            self.eof = True
            self.buf += self._text_decoder.decode(b"", final=True)
        return True

    def _skip_whitespace(self) -> bool:
        """Move pos to the next non-blank character; False at the end of the file."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def _element(self, index: int) -> Record:
        """Read the element at pos; leave pos on the ',' or ']' after it (or at the end)."""
        while True:
            buf, start = self.buf, self.pos
            try:
                value, end = _raw_decode(buf, start)
            except (ValueError, RecursionError) as exc:
                error = _json_error(exc, start)
            else:
                after = _WHITESPACE.match(buf, end).end()
                if after < len(buf) and buf[after] in ",]":
                    self.pos = after
                    return self._record(index, buf[start:end], value)
                if after >= len(buf):
                    if self.eof:
                        self.pos = after
                        return self._record(index, buf[start:end], value)
                    self._more()  # the value may go on in the next chunk (e.g. a number)
                    continue
                error = f"unexpected text after the value, at character {after - start + 1}"
            # json could not read it: find where the element ends, and keep it whole.
            finder = _ElementEnd()
            end = finder.find(buf, start)
            if end is None:
                if len(buf) - start > self.max_record_bytes:
                    return self._overlong(index, finder)
                if self._more():
                    continue  # read on: the element may be whole once more text is in
                end = len(buf)
                error += "; the file ends inside this element"
            self.pos = end
            text = buf[start:end].rstrip()
            return (index, self._checked_text(text)[0], None, error)

    def _record(self, index: int, text: str, value) -> Record:
        text, problem = self._checked_text(text)
        if problem:
            return (index, text, None, problem)
        return _object_record(index, text, value)

    @staticmethod
    def _checked_text(text: str) -> tuple[str, str]:
        if text.isascii():
            return text, ""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogateescape")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return raw.decode("utf-8", "backslashreplace"), _encoding_error(exc, "the element")
        return text, ""

    def _overlong(self, index: int, finder: _ElementEnd) -> Record:
        """Keep the first max_record_bytes of an element and skip the rest of it."""
        text = self.buf[self.pos : self.pos + self.max_record_bytes]
        while True:
            self.pos = len(self.buf)  # everything read so far belongs to the element
            if not self._more():
                break
            end = finder.find(self.buf, 0)
            if end is not None:
                self.pos = end
                break
        return (
            index,
            self._checked_text(text)[0],
            None,
            f"element {index} is longer than {self.max_record_bytes} bytes; "
            "its text is cut at that length",
        )

    def _trailing_text(self, index: int) -> Record:
        """Text after the array's closing bracket, kept as one unreadable record."""
        parts, size = [], 0
        while True:
            piece = self.buf[self.pos :]
            if size < self.max_record_bytes:
                parts.append(piece[: self.max_record_bytes - size])
            size += len(piece)
            self.pos = len(self.buf)
            if not self._more():
                break
        text = "".join(parts).rstrip()
        return (index, self._checked_text(text)[0], None, "text after the end of the array")


def _json_error(exc: Exception, start: int) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}, at character {exc.pos - start + 1}"
    return f"invalid JSON: {exc}"


READERS = {CSV: CsvReader, JSONL: JsonLinesReader, JSON: JsonArrayReader}


def reader_for(
    fmt: str, stream: BinaryIO, *, max_record_bytes: int, max_lines: int | None = None
) -> _Reader:
    try:
        return READERS[fmt](stream, max_record_bytes=max_record_bytes, max_lines=max_lines)
    except KeyError:
        raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}") from None
