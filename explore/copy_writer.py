"""Writes parsed records into explore.raw_record with PostgreSQL COPY.

COPY (psycopg 3's `cursor.copy()`, on the Django connection's cursor) is the
fastest way into PostgreSQL: rows are streamed in PostgreSQL's text format, no
statement per row. The caller owns the transaction.

Rows go in several COPY statements of `statement_rows` each. raw_record's foreign
keys are checked by triggers whose pending events PostgreSQL keeps in memory until
they fire; with the constraints made IMMEDIATE they fire at the end of each
statement, so that server memory stays bounded however long the file is (deferred,
they would all wait for the commit).

Payloads come as canonical JSON text (explore.parsers): it escapes every control
character, so only its backslashes need escaping for COPY.

This is also the last gate before the database: text PostgreSQL cannot store
(a NUL character, an unpaired surrogate from a JSON escape) turns its record
into a failed one instead of failing the whole COPY.
"""

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from atlas_site.schemas import sql_table
from explore.models import RawRecord
from explore.parsers import Record

COLUMNS = (
    "received_at",
    "batch_id",
    "dataset_id",
    "line_number",
    "payload",
    "raw_text",
    "parse_error",
    "payload_hash",
)
COPY_SQL = f"COPY {sql_table(RawRecord)} ({', '.join(COLUMNS)}) FROM STDIN"

NUL_ERROR = "contains NUL (0x00) characters, which PostgreSQL cannot store; shown as \\x00"
SURROGATE_ERROR = "holds an unpaired UTF-16 surrogate escape, which is not valid Unicode"
# A \u0000 escape in JSON text that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

sha256 = hashlib.sha256


def escape(text: str) -> str:
    """A value in COPY's text format: backslash, tab and line breaks escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t")
        return text.replace("\n", "\\n").replace("\r", "\\r")
    return text


@dataclass
class CopyResult:
    rows_total: int = 0
    rows_parsed: int = 0
    rows_failed: int = 0
    statements: int = 0


def copy_records(
    cursor,
    records: Iterable[Record],
    *,
    batch_id: int,
    dataset_id: int,
    received_at: datetime,
    statement_rows: int = 100_000,
    write_rows: int = 2_000,
    on_progress: Callable[..., None] | None = None,
) -> CopyResult:
    """COPY every record into raw_record; return the counts. Call inside a transaction.

    `on_progress(result, statement_done)` is called with the counts so far after each
    `write_rows` rows handed to COPY (statement_done False) and after each statement.
    """
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    result = CopyResult()
    write_rows = min(write_rows, statement_rows)
    # The same three columns start every row.
    prefix = f"{received_at.isoformat()}\t{batch_id}\t{dataset_id}\t"
    iterator = iter(records)
    while True:
        with cursor.copy(COPY_SQL) as copy:
            result.statements += 1
            written = _copy_some(
                copy, iterator, prefix, result, statement_rows, write_rows, on_progress
            )
        if on_progress is not None:
            on_progress(result, True)
        if written < statement_rows:
            return result


def _copy_some(
    copy,
    records: Iterator[Record],
    prefix: str,
    result: CopyResult,
    limit: int,
    write_rows: int,
    on_progress: Callable[..., None] | None = None,
) -> int:
    """Write up to `limit` records into one COPY statement; return how many."""
    lines: list[str] = []
    parsed = failed = 0
    counted_parsed = counted_failed = 0  # already added to result
    for line_number, raw, payload, error in records:
        if "\x00" in raw:
            raw, payload, error = raw.replace("\x00", "\\x00"), None, error or NUL_ERROR
        if payload is not None:
            try:
                digest = sha256(payload.encode()).hexdigest()
            except UnicodeEncodeError:
                payload, error = None, SURROGATE_ERROR
            else:
                if "\\u0000" in payload and _NUL_ESCAPE.search(payload):
                    payload, error = None, NUL_ERROR
        if payload is None:
            failed += 1
            if not raw.isascii():
                raw = raw.encode("utf-8", "backslashreplace").decode("utf-8")
            lines.append(
                f"{prefix}{line_number}\t\\N\t{escape(raw)}\t{escape(error or 'unreadable')}\t\n"
            )
        else:
            parsed += 1
            # Canonical JSON escapes every control character, so only its backslashes
            # need escaping for COPY (one scan instead of four).
            if "\\" in payload:
                payload = payload.replace("\\", "\\\\")
            lines.append(f"{prefix}{line_number}\t{payload}\t{escape(raw)}\t\t{digest}\n")
        if len(lines) >= write_rows:
            copy.write("".join(lines))
            lines.clear()
            result.rows_parsed += parsed - counted_parsed
            result.rows_failed += failed - counted_failed
            result.rows_total = result.rows_parsed + result.rows_failed
            counted_parsed, counted_failed = parsed, failed
            if on_progress is not None:
                on_progress(result, False)
            if parsed + failed >= limit:
                break
    if lines:
        copy.write("".join(lines))
    result.rows_parsed += parsed - counted_parsed
    result.rows_failed += failed - counted_failed
    result.rows_total = result.rows_parsed + result.rows_failed
    return parsed + failed
