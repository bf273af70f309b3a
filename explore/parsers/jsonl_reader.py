"""JSON Lines: one JSON object per line."""

from collections.abc import Iterator

from explore.parsers.json_values import decode, object_record
from explore.parsers.records import BOM, Reader, Record, encoding_error, too_many_lines


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


class JsonLinesReader(Reader):
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
                problem = problem or encoding_error(exc, f"line {line_number}")
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
                value = decode(text)
            except (ValueError, RecursionError) as exc:
                yield (line_number, raw, None, f"invalid JSON: {exc}")
                continue
            yield object_record(line_number, raw, value)
