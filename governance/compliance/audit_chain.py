"""The audit log's hash chain: what each entry's hash covers, verifying it, re-chaining.

Every entry of `compliance.audit_log` stores two sha256 digests, written by the
database (the BEFORE INSERT trigger `seal_entry`, function
`compliance.audit_log_seal()`, migration 0009), never by the application:

    prev_hash = the `hash` of the entry before it in its quarter (by id), or for the
                quarter's first entry the genesis value sha256("compliance.audit_log 2026-Q4")
    hash      = sha256(prev_hash || payload as UTF-8)
    payload   = the jsonb text of the array
                [id, at in UTC as "2026-11-26T09:09:00.123456Z", actor_id, actor, action,
                 object_type, object_id, object_repr, before as text, after as text,
                 remote_addr as text, user_agent, detail]

A quarter is the partition the entry belongs to by its `at` (UTC quarters, like the
partitions' bounds). Entries that wait in the DEFAULT partition are chained by their own
quarter too, so moving them into their partition (`atlas_site.partitions
.move_default_rows`) keeps every link valid.

The same trigger sets `at` (the statement's time; a client's value is overridden, or
refused when it names another quarter) and `id` (from `compliance.audit_log_id_seq`, under
the quarter's advisory transaction lock), so the chain order is the id order.

`verify()` walks each partition in id order and recomputes every hash here, in Python,
from the rows as read: PostgreSQL only renders the payload with its built-in functions
(qualified with pg_catalog, so a function of the same name elsewhere cannot stand in),
nothing the owner role could redefine. It finds an entry changed after it was written
(its content no longer hashes to its `hash`), one deleted or inserted (the next entry's
`prev_hash` is not the hash of the entry now before it), and entries re-hashed in place
(the link after them breaks). It cannot see the newest entries of a quarter deleted
together (nothing comes after them to break), nor a whole partition dropped: keep each
quarter's last id and hash, which it prints, somewhere the database roles cannot write.

`rechain()` recomputes a partition's chain from its rows as they are (migration 0009 for
the entries written before the chain; restoring an archive made before it). Only the
owner can run it: it disables the append-only trigger of that partition for its own
transaction.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import connections

from atlas_site.partitions import AUDIT_LOG, existing_partitions, partition_range

GENESIS_PREFIX = "compliance.audit_log "
REFUSE_TRIGGER = "refuse_update_delete"  # migration 0001
BATCH = 5000

# The payload, rendered by PostgreSQL's built-in functions only. The trigger's copy of
# this expression (migration 0009) must stay identical: the tests prove they agree.
PAYLOAD_SQL = """pg_catalog.jsonb_build_array(
    {t}.id,
    pg_catalog.to_char({t}.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    {t}.actor_id, {t}.actor, {t}.action, {t}.object_type, {t}.object_id, {t}.object_repr,
    {t}.before::pg_catalog.text, {t}.after::pg_catalog.text,
    {t}.remote_addr::pg_catalog.text, {t}.user_agent, {t}.detail
)::pg_catalog.text"""
QUARTER_SQL = (
    "pg_catalog.to_char(pg_catalog.date_trunc('quarter', {t}.at AT TIME ZONE 'UTC'), 'YYYY\"-Q\"Q')"
)
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)


def quarter_label(start: date) -> str:
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def parse_quarter(text: str) -> date:
    """'2026-Q4' (or '2026Q4', any case) -> date(2026, 10, 1)."""
    match = _QUARTER.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a quarter: write it as 2026-Q4")
    return date(int(match[1]), (int(match[2]) - 1) * 3 + 1, 1)


def genesis(label: str) -> bytes:
    """What the first entry of quarter `label` ('2026-Q4') links to."""
    return hashlib.sha256((GENESIS_PREFIX + label).encode()).digest()


def entry_hash(prev_hash: bytes, payload: str) -> bytes:
    return hashlib.sha256(bytes(prev_hash) + payload.encode()).digest()


@dataclass(frozen=True)
class Break:
    id: int
    quarter: str
    reason: str


@dataclass
class PartitionResult:
    partition: str  # schema-qualified name
    quarters: list[str] = field(default_factory=list)
    entries: int = 0  # entries verified (those before the break, when broken)
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # quarter -> (id, hash)
    broken: Break | None = None


@dataclass(frozen=True)
class _Row:
    id: int
    at: datetime
    quarter: str
    prev_hash: bytes
    hash: bytes
    payload: str


def _short(digest: bytes) -> str:
    return bytes(digest).hex()[:16] + "…"


def _partitions(cursor, quarter: date | None) -> list[tuple[str, date | None]]:
    """(partition name, quarter start; None for DEFAULT), range partitions first in order."""
    ranged, default = [], []
    for name, bound in existing_partitions(AUDIT_LOG, cursor).items():
        period = partition_range(bound)
        if period is None:
            default.append((name, None))
        elif quarter is None or period[0] == quarter:
            ranged.append((name, period[0]))
    return sorted(ranged, key=lambda item: item[1]) + default


def _rows(cursor, partition: str, quarter: date | None, batch: int) -> Iterator[_Row]:
    """The partition's entries (of `quarter` only, when given) in (id, at) order."""
    where, params = "", []
    if quarter is not None:
        end = AUDIT_LOG.shift(quarter, 1)
        where = " AND a.at >= %s AND a.at < %s"
        params = [AUDIT_LOG.bound(quarter), AUDIT_LOG.bound(end)]
    query = (
        f"SELECT a.id, a.at, {QUARTER_SQL.format(t='a')}, a.prev_hash, a.hash, "
        f"{PAYLOAD_SQL.format(t='a')} FROM {AUDIT_LOG.partition_sql_name(partition)} a "
        f"WHERE (a.id, a.at) > (%s, %s){where} ORDER BY a.id, a.at LIMIT %s"
    )
    last = (-(2**63), datetime(1, 1, 1, tzinfo=UTC))
    while True:
        cursor.execute(query, [*last, *params, batch])
        fetched = cursor.fetchall()
        for row in fetched:
            yield _Row(row[0], row[1], row[2], bytes(row[3]), bytes(row[4]), row[5])
        if len(fetched) < batch:
            return
        last = (fetched[-1][0], fetched[-1][1])


def _check(row: _Row, before: tuple[int, bytes] | None) -> str | None:
    """Why `row` breaks the chain after `before` ((id, recomputed hash) or None), if it does."""
    expected = genesis(row.quarter) if before is None else before[1]
    if row.prev_hash != expected:
        if before is None:
            return (
                f"its prev_hash is {_short(row.prev_hash)} but as the first entry of "
                f"{row.quarter} it should link to the quarter's genesis value "
                f"{_short(expected)}: entries before it were deleted"
            )
        return (
            f"its prev_hash is {_short(row.prev_hash)} but the entry before it, id "
            f"{before[0]}, hashes to {_short(expected)}: an entry between them was "
            f"deleted, or id {before[0]} was changed (and re-hashed) after id {row.id} "
            "was written"
        )
    recomputed = entry_hash(row.prev_hash, row.payload)
    if row.hash != recomputed:
        return (
            f"its content hashes to {_short(recomputed)} but it stores "
            f"{_short(row.hash)}: it was changed after it was written (time, actor, "
            "action, object, values or detail)"
        )
    return None


def verify(
    *, quarter: date | None = None, using: str = "default", batch: int = BATCH
) -> list[PartitionResult]:
    """Recompute the chain of each partition (of one quarter, when given) in id order.

    Each result names the partition, the entries verified, each quarter's last entry
    (id and hash) and the first broken link, if any.
    """
    results = []
    with connections[using].cursor() as cursor:
        for name, start in _partitions(cursor, quarter):
            result = PartitionResult(partition=f"{AUDIT_LOG.schema}.{name}")
            if start is not None:
                result.quarters.append(quarter_label(start))
            for row in _rows(cursor, name, quarter if start is None else None, batch):
                if row.quarter not in result.quarters:
                    result.quarters.append(row.quarter)
                reason = _check(row, result.heads.get(row.quarter))
                if reason is not None:
                    result.broken = Break(id=row.id, quarter=row.quarter, reason=reason)
                    break
                result.heads[row.quarter] = (row.id, row.hash)
                result.entries += 1
            results.append(result)
    return results


def rechain(cursor, partition: str, *, quarter: date | None = None, batch: int = BATCH) -> int:
    """Write `prev_hash` and `hash` of every entry of `partition` (of `quarter` only, when
    given) from its rows as they are now; returns the entries chained.

    For the owner role inside a transaction: the partition's append-only trigger is
    disabled for the UPDATE and enabled again before returning (a rollback undoes both).
    It certifies the rows as they stand, so it is run only where no chain existed: the
    entries written before migration 0009, an archive restored from before it.
    """
    relation = AUDIT_LOG.partition_sql_name(partition)
    cursor.execute(f"ALTER TABLE {relation} DISABLE TRIGGER {REFUSE_TRIGGER}")
    heads: dict[str, bytes] = {}
    chained = 0
    pending: list[_Row] = []

    def flush() -> None:
        if not pending:
            return
        prev_hashes, hashes = [], []
        for row in pending:
            prev_hash = heads.get(row.quarter) or genesis(row.quarter)
            heads[row.quarter] = entry_hash(prev_hash, row.payload)
            prev_hashes.append(prev_hash)
            hashes.append(heads[row.quarter])
        cursor.execute(
            f"UPDATE {relation} AS a SET prev_hash = v.prev_hash, hash = v.hash "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::bytea[], %s::bytea[]) "
            "AS v(id, at, prev_hash, hash) WHERE a.id = v.id AND a.at = v.at",
            [[r.id for r in pending], [r.at for r in pending], prev_hashes, hashes],
        )
        pending.clear()

    # The rows are read whole before each UPDATE batch: the keyset moves on by (id, at),
    # which the UPDATE leaves as they are.
    for row in _rows(cursor, partition, quarter, batch):
        pending.append(row)
        chained += 1
        if len(pending) >= batch:
            flush()
    flush()
    cursor.execute(f"ALTER TABLE {relation} ENABLE TRIGGER {REFUSE_TRIGGER}")
    return chained


def rechain_all(cursor) -> int:
    """Chain every entry of every partition (migration 0009); returns the entries chained."""
    return sum(rechain(cursor, name) for name, _ in _partitions(cursor, None))
