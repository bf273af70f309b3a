"""Reading a dataset's raw records in chunks bounded by rows and by bytes.

A promotion's memory is a multiple of its chunk's size (the payloads, their decoded
records, the typed values and the rows written, in the promoting process and in each
evaluation process). A fixed number of rows is fine for narrow records but not for
wide ones: 5,000 records of 1,000 fields took half a gigabyte in one process. So a
chunk ends at whichever comes first, `chunk_size` records or `chunk_bytes` of
payload text; a single record larger than `chunk_bytes` is a chunk of its own.
"""

from django.db import connection, transaction

from atlas_site.schemas import sql_table
from chart.evaluation import RawRow
from explore.models import RawRecord

CHUNK_SIZE = 5000
CHUNK_BYTES = 8 * 1024 * 1024
# The database casts and measures up to this many times the rows a chunk is expected to
# hold: room for records that grow narrower, without casting thousands of wide records
# only to return a few hundred.
ROWS_LOOKED_AHEAD = 2

# The window sums each row's size over the rows before it, so the database returns the
# chunk's rows only (a row is kept while the rows before it are under the budget: the
# first row always is). The LIMIT keeps the innermost query apart, so each payload is
# cast to text once.
NEXT_ROWS = f"""
    SELECT id, payload, parse_error
      FROM (
            SELECT id, payload, parse_error,
                   sum(size) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) - size AS before
              FROM (
                    SELECT id, payload, parse_error,
                           coalesce(octet_length(payload), 0) + octet_length(parse_error) AS size
                      FROM (
                            SELECT id, payload::text AS payload, parse_error
                              FROM {sql_table(RawRecord)}
                             WHERE dataset_id = %s AND id > %s
                             ORDER BY id
                             LIMIT %s
                           ) AS next_rows
                   ) AS measured
           ) AS sized
     WHERE before < %s
     ORDER BY id
"""


def read_chunk(*, dataset_id: int, after_id: int, max_rows: int, max_bytes: int) -> list[RawRow]:
    """The dataset's next raw records above `after_id`, in id order, within both bounds.

    Payloads come as JSON text: the process that judges a record decodes it, which
    keeps that work off the promoting process.
    """
    # The rows must be read by walking the (dataset, id) index and stopping after the
    # chunk. Without statistics on a freshly landed partition, the planner estimates
    # that few rows lie above `after_id` and rather fetches all of them with a bitmap
    # scan and sorts them, for every chunk: a million-row run spent minutes on that.
    # So bitmap scans are off for this one query (a LOCAL setting ends with the
    # transaction, hence the transaction; the setting before is put back for an
    # enclosing one).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_bitmapscan')")
        before = cursor.fetchone()[0]
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(NEXT_ROWS, [dataset_id, after_id, max_rows, max_bytes])
        rows = cursor.fetchall()
        cursor.execute("SELECT set_config('enable_bitmapscan', %s, true)", [before])
    return rows


class ChunkReader:
    """Reads a dataset's raw records chunk after chunk, learning how wide they are.

    The row limit sent to the database follows the width of the chunk before, so wide
    records are neither cast in thousands nor returned beyond `chunk_bytes`.
    """

    def __init__(self, *, dataset_id: int, chunk_size: int, chunk_bytes: int) -> None:
        if chunk_size < 1 or chunk_bytes < 1:
            raise ValueError(
                f"a chunk needs at least one record and one byte "
                f"(chunk_size={chunk_size}, chunk_bytes={chunk_bytes})"
            )
        self.dataset_id = dataset_id
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.rows_asked = chunk_size

    def read(self, after_id: int) -> list[RawRow]:
        rows = read_chunk(
            dataset_id=self.dataset_id,
            after_id=after_id,
            max_rows=self.rows_asked,
            max_bytes=self.chunk_bytes,
        )
        if rows:
            self._learn_width(rows)
        return rows

    def _learn_width(self, rows: list[RawRow]) -> None:
        size = sum(len(payload or "") + len(error) for _, payload, error in rows)
        width = max(1.0, size / len(rows))
        expected = int(self.chunk_bytes / width) + 1
        self.rows_asked = max(1, min(self.chunk_size, ROWS_LOOKED_AHEAD * expected))
