"""A JSON array whose elements are the records, read a chunk at a time."""

import codecs
import json
import re
from collections.abc import Iterator

from explore.parsers.json_values import object_record, raw_decode
from explore.parsers.records import BOM, FormatError, Reader, Record, encoding_error, too_many_lines

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


class JsonArrayReader(Reader):
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
                value, end = raw_decode(buf, start)
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
        return object_record(index, text, value)

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
                return raw.decode("utf-8", "backslashreplace"), encoding_error(exc, "the element")
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
