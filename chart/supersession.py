"""Business keys: of the chart records sharing a key, one is current.

A record whose business key arrives again is superseded by the newer one: it stops
being current and points at its successor (`superseded_by`). Within a chunk the later
line wins (`successors_within`, before the chunk is written); across chunks the
chunk's first record of a key supersedes the current record written before it
(`supersede_earlier_chunks`). Records written out of raw order (re-processed from
quarantine, rebuilt from explore) are settled by their raw record ids instead
(`settle_current`). Records without a business key supersede nothing.
"""

from django.db import connection

from atlas_site.schemas import sql_table
from chart.evaluation import Verdict
from chart.models import ChartRecord
from governance.pipeline.models import Dataset


def successors_within(promoted: list[Verdict], chart_id_of_raw: dict[int, int]) -> dict[int, int]:
    """Within a chunk, raw id -> chart id of the later record with the same business key."""
    successor: dict[int, int] = {}
    later: dict[str, int] = {}
    for verdict in reversed(promoted):  # raw id order: a later line wins
        if not verdict.business_key:
            continue
        if verdict.business_key in later:
            successor[verdict.raw_id] = later[verdict.business_key]
        later[verdict.business_key] = chart_id_of_raw[verdict.raw_id]
    return successor


def supersede_earlier_chunks(dataset: Dataset, *, first_raw_id: int, last_raw_id: int) -> int:
    """Records of earlier chunks whose business key arrived again stop being current.

    The chunk's chart records (those of its raw ids) are already written; the first
    of each business key supersedes the current record of an earlier chunk.
    """
    return _supersede(
        dataset,
        successors_where="business_key <> '' "
        "AND raw_record_id BETWEEN %(first_raw_id)s AND %(last_raw_id)s",
        successors_order="id",
        only_older=True,
        params={"first_raw_id": first_raw_id, "last_raw_id": last_raw_id},
    )


def settle_current(dataset: Dataset, chart_ids: list[int]) -> int:
    """Of each business key just re-processed, the current record is the latest line.

    A re-processed record may be older than a record already in chart with its key
    (it then arrives superseded) or newer (it supersedes that one): the raw record id
    orders them, as in a promotion. Returns the records retired.
    """
    if not chart_ids:
        return 0
    return _supersede(
        dataset,
        successors_where=f"""is_current
                     AND business_key IN (
                         SELECT business_key FROM {sql_table(ChartRecord)}
                          WHERE id = ANY(%(ids)s) AND business_key <> ''
                     )""",
        successors_order="raw_record_id DESC",
        only_older=False,
        params={"ids": chart_ids},
    )


def _supersede(
    dataset: Dataset,
    *,
    successors_where: str,
    successors_order: str,
    only_older: bool,
    params: dict,
) -> int:
    """Current records of a key stop being current, superseded by the key's successor.

    Of the dataset's records matching `successors_where`, the first of each business
    key in `successors_order` is that key's successor; every other current record of
    the key (with `only_older`, only those with a smaller id) is retired. Returns how
    many were.
    """
    table = sql_table(ChartRecord)
    retired = "old.id < new.id" if only_older else "old.id <> new.id"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS old
               SET is_current = false, superseded_by_id = new.id
              FROM (
                  SELECT DISTINCT ON (business_key) business_key, id
                    FROM {table}
                   WHERE dataset_id = %(dataset)s AND {successors_where}
                   ORDER BY business_key, {successors_order}
              ) AS new
             WHERE old.dataset_id = %(dataset)s AND old.is_current
               AND old.business_key = new.business_key AND {retired}
            """,
            {"dataset": dataset.pk, **params},
        )
        return cursor.rowcount
