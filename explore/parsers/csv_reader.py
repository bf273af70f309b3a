"""CSV with a header row, read a block of lines at a time."""

import csv
import itertools
import re
from collections.abc import Iterator
from json.encoder import encode_basestring
from operator import itemgetter
from typing import BinaryIO

from explore.parsers.head import parse_header
from explore.parsers.records import (
    BOM,
    FormatError,
    Reader,
    Record,
    encoding_error,
    too_many_lines,
)

_LINE = re.compile(r"[^\n]*\n")


class LineBlocks:
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
                        self.problems.setdefault(number, encoding_error(exc, f"line {number}"))
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


def _wrong_width(row: list[str], columns: int, start: int, end: int) -> str:
    """Why a record has the wrong number of fields, saying where a quote swallowed lines:
    a record read across several lines with too few fields is one whose opening quote was
    never closed (or closed lines later), the lines after it read as one value."""
    found = f"expected {columns} fields as in the header, found {len(row)}"
    if end > start and len(row) < columns and any("\n" in value for value in row):
        return (
            f"an opening quote at line {start} is never closed where it should be: lines "
            f"{start}-{end} were read as one record ({found})"
        )
    return found


class CsvReader(Reader):
    """CSV with a header row; each record's payload maps header name -> text value."""

    @property
    def lines_read(self) -> int:
        source = getattr(self, "_source", None)
        return max(source.lines_read - 1, 0) if source is not None else 0

    def __iter__(self) -> Iterator[Record]:
        limit = None if self.max_lines is None else self.max_lines + 1  # and the header
        source = self._source = LineBlocks(self.stream, self.max_record_bytes, limit)
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
                yield (start, text(start, done), None, _wrong_width(row, columns, start, done))
