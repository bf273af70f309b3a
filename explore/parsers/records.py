"""What every reader yields and raises: the record tuple, the formats, the errors, and the
readers' common base (see the package's docstring for the record's parts)."""

from collections.abc import Iterator
from typing import BinaryIO

Record = tuple[int, str, str | None, str]

CSV, JSONL, JSON = "csv", "jsonl", "json"
FORMATS = (CSV, JSONL, JSON)
EXTENSIONS = {".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL, ".json": JSON}
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


def encoding_error(exc: UnicodeDecodeError, what: str) -> str:
    """Why text is not UTF-8, where: "line 3 is not valid UTF-8 (byte 5: ...)"."""
    return f"{what} is not valid UTF-8 (byte {exc.start + 1}: {exc.reason})"


class Reader:
    """A streaming reader of one format: iterate it for the records (see the package)."""

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
