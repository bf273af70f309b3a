"""Range-partitioned tables: which they are, how their partitions are named and made.

Migrations create each parent with a DEFAULT partition (no row is ever refused);
the maintenance job (`governance.archive.services.upkeep.ensure_partitions`) keeps real
partitions ahead of today and moves rows out of DEFAULT using the functions here.
"""

import re
from collections.abc import Collection
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, migrations
from django.db.backends.utils import split_identifier
from django.utils import timezone

from atlas_site.schemas import sql_name

MONTH, QUARTER, YEAR = "month", "quarter", "year"
_MONTHS_PER = {MONTH: 1, QUARTER: 3, YEAR: 12}


@dataclass(frozen=True)
class PartitionedTable:
    db_table: str  # as in the model's Meta: 'schema"."table'
    key: str  # the partition key column
    interval: str  # MONTH, QUARTER or YEAR
    key_is_date: bool = False  # a date column; otherwise timestamp with time zone
    append_only: bool = False  # partitions get the audit log's no-TRUNCATE trigger
    # A BEFORE INSERT row trigger that stamps new rows (the audit log's `at`, id and hash
    # chain). Being a row trigger, it is cloned onto every partition as it is made. Rows
    # moved out of DEFAULT or restored from an archive keep their values: those inserts
    # run with it disabled, in their own transaction (only the owner may).
    sealed_by: str = ""
    # A condition on its rows (SQL): retention never retires a partition holding a row
    # that meets it, whatever the policies say (chart's current records, which the
    # facts, the reporting views and supersession still read); `kept_because` says it.
    kept_while: str = ""
    kept_because: str = ""

    @property
    def schema(self) -> str:
        return split_identifier(self.db_table)[0]

    @property
    def name(self) -> str:
        return split_identifier(self.db_table)[1]

    @property
    def label(self) -> str:
        """schema.table, as reports and manifests name it."""
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return sql_name(self.db_table)

    def partition_sql_name(self, partition: str) -> str:
        """The quoted SQL name of one of its partitions (or any table in its schema)."""
        return f'"{self.schema}"."{partition}"'

    @property
    def default_partition(self) -> str:
        return f"{self.name}_default"

    def period_start(self, day: date) -> date:
        months = _MONTHS_PER[self.interval]
        return date(day.year, ((day.month - 1) // months) * months + 1, 1)

    def shift(self, start: date, periods: int) -> date:
        month_index = start.year * 12 + start.month - 1 + periods * _MONTHS_PER[self.interval]
        return date(month_index // 12, month_index % 12 + 1, 1)

    def partition_name(self, start: date) -> str:
        if self.interval == YEAR:
            return f"{self.name}_{start:%Y}"
        if self.interval == QUARTER:
            return f"{self.name}_{start:%Y}_q{(start.month - 1) // 3 + 1}"
        return f"{self.name}_{start:%Y_%m}"

    def bound(self, day: date) -> str:
        return day.isoformat() if self.key_is_date else f"{day.isoformat()} 00:00:00+00"


RAW_RECORDS = PartitionedTable('explore"."raw_record', "received_at", MONTH)
FACTS = PartitionedTable('navigate"."fact', "period_start", YEAR, key_is_date=True)
AUDIT_LOG = PartitionedTable(
    'compliance"."audit_log', "at", QUARTER, append_only=True, sealed_by="seal_entry"
)

# By month of promotion (`created_at`), which every record has and which never changes:
# a record's own time field may be missing, malformed or anywhere in time. A record is
# retired only as history: its partition holds no current record of any business key.
CHART_RECORDS = PartitionedTable(
    'chart"."chart_record',
    "created_at",
    MONTH,
    kept_while="is_current",
    kept_because="holds records still current for their business key",
)

# The position in this tuple is each table's advisory lock key (ddl.lock_table): append.
PARTITIONED_TABLES = (RAW_RECORDS, FACTS, AUDIT_LOG, CHART_RECORDS)


def by_db_table(db_table: str) -> PartitionedTable:
    for table in PARTITIONED_TABLES:
        if db_table in (table.db_table, table.label, table.name):
            return table
    names = ", ".join(t.label for t in PARTITIONED_TABLES)
    raise LookupError(f"{db_table!r} is not a partitioned Atlas table (known: {names})")


APPEND_ONLY_TRUNCATE_TRIGGER = "refuse_truncate"


def _append_only_sql(table: PartitionedTable, partition: str) -> str:
    return (
        f"CREATE OR REPLACE TRIGGER {APPEND_ONLY_TRUNCATE_TRIGGER} "
        f"BEFORE TRUNCATE ON {table.partition_sql_name(partition)} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table.schema}.refuse_audit_change();"
    )


def create_default_partition_sql(table: PartitionedTable) -> str:
    sql = (
        f"CREATE TABLE IF NOT EXISTS {table.partition_sql_name(table.default_partition)} "
        f"PARTITION OF {table.sql_name} DEFAULT;"
    )
    if table.append_only:
        sql += "\n" + _append_only_sql(table, table.default_partition)
    return sql


# --- What is attached, and how many rows ----------------------------------------------

# PostgreSQL's estimate of a table's rows, for pg_class `c` LEFT JOIN pg_stat_user_tables
# `s`: reltuples is kept by ANALYZE and autovacuum, and is -1 until the table was first
# analysed; the statistics collector's live-tuple count stands in until then.
_ROW_ESTIMATE = (
    "CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE coalesce(s.n_live_tup, 0) END"
)
_RANGE = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One range partition attached to a partitioned table: keys from `start` (the UTC
    day its lower bound falls on) up to `end`.

    Two are equal when table, name and range are: the row estimate and size are what
    the statistics said when it was listed.
    """

    table: PartitionedTable
    name: str
    start: date
    end: date
    rows_estimate: int = field(default=0, compare=False)
    total_bytes: int | None = field(default=None, compare=False)  # listed with sizes=True

    @property
    def table_name(self) -> str:
        return self.table.label

    @property
    def sql_name(self) -> str:
        return self.table.partition_sql_name(self.name)


def _bound_date(text: str) -> date:
    # Bounds are midnight UTC (see PartitionedTable.bound); the session may show another zone.
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text).astimezone(UTC).date()


def partition_range(bound: str) -> tuple[date, date] | None:
    """(start, end) of a partition from its bound expression; None for DEFAULT."""
    match = _RANGE.search(bound or "")
    if match is None:
        return None
    return _bound_date(match[1]), _bound_date(match[2])


def _catalog(table: PartitionedTable, cursor, *, sizes: bool) -> list[tuple[str, str, int, int]]:
    """(name, bound expression, estimated rows, size or None) of each attached partition."""
    size = "pg_total_relation_size(c.oid)" if sizes else "NULL"
    cursor.execute(
        f"""
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), {_ROW_ESTIMATE}, {size}
          FROM pg_inherits i
          JOIN pg_class parent ON parent.oid = i.inhparent
          JOIN pg_namespace n ON n.oid = parent.relnamespace
          JOIN pg_class c ON c.oid = i.inhrelid
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE n.nspname = %s AND parent.relname = %s
         ORDER BY c.relname
        """,
        [table.schema, table.name],
    )
    return cursor.fetchall()


def existing_partitions(table: PartitionedTable, cursor=None) -> dict[str, str]:
    """Partition name -> bound expression, for the partitions attached to `table`
    (DEFAULT too; `partition_range` reads a bound)."""
    if cursor is None:
        with connection.cursor() as own_cursor:
            return existing_partitions(table, own_cursor)
    return {name: bound for name, bound, _rows, _size in _catalog(table, cursor, sizes=False)}


def attached_partitions(
    table: PartitionedTable, cursor=None, *, sizes: bool = False
) -> list[Partition]:
    """The table's range partitions in range order (DEFAULT left out), with their
    estimated rows.

    Reads the catalog and statistics only, so it waits for no lock. `sizes` adds each
    partition's size on disk, which takes a lock on each (pg_total_relation_size): a
    page may wait behind partition DDL, partition upkeep should not, so it leaves them.
    """
    if cursor is None:
        with connection.cursor() as own_cursor:
            return attached_partitions(table, own_cursor, sizes=sizes)
    found = []
    for name, bound, rows, size in _catalog(table, cursor, sizes=sizes):
        period = partition_range(bound)
        if period is not None:
            found.append(Partition(table, name, *period, rows_estimate=int(rows), total_bytes=size))
    return sorted(found, key=lambda partition: partition.start)


def estimated_rows(relation: str, cursor=None) -> int:
    """PostgreSQL's estimate of the rows of a table, summed over its partitions when it
    has them; `relation` is its quoted SQL name. Cheap on any size: statistics only."""
    if cursor is None:
        with connection.cursor() as own_cursor:
            return estimated_rows(relation, own_cursor)
    cursor.execute(
        f"""
        SELECT coalesce(sum({_ROW_ESTIMATE}), 0)
          FROM pg_class c
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE c.oid IN (SELECT relid FROM pg_partition_tree(%(table)s::regclass) WHERE isleaf)
            OR (c.oid = %(table)s::regclass AND c.relkind = 'r')
        """,
        {"table": relation},
    )
    return int(cursor.fetchone()[0])


def size_on_disk(relation: str, cursor) -> int:
    """Bytes of a table (or partition) with its indexes and TOAST; waits behind DDL on it."""
    cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [relation])
    return int(cursor.fetchone()[0])


def rows_in_default(table: PartitionedTable, cursor) -> int:
    cursor.execute(f"SELECT count(*) FROM {table.partition_sql_name(table.default_partition)}")
    return cursor.fetchone()[0]


def rows_in_default_for_range(table: PartitionedTable, cursor, start: date, end: date) -> int:
    cursor.execute(
        f"SELECT count(*) FROM {table.partition_sql_name(table.default_partition)} "
        f'WHERE "{table.key}" >= %s AND "{table.key}" < %s',
        [table.bound(start), table.bound(end)],
    )
    return cursor.fetchone()[0]


def create_partition(table: PartitionedTable, cursor, start: date) -> str:
    """Create the partition holding the period that begins at `start`; return its name.

    Callers check the DEFAULT partition first: PostgreSQL refuses a new partition
    while rows for its range sit in DEFAULT.
    """
    start = table.period_start(start)
    name = table.partition_name(start)
    end = table.shift(start, 1)
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {table.partition_sql_name(name)} "
        f"PARTITION OF {table.sql_name} "
        f"FOR VALUES FROM ('{table.bound(start)}') TO ('{table.bound(end)}')"
    )
    if table.append_only:
        cursor.execute(_append_only_sql(table, name))
    return name


@dataclass
class PartitionReport:
    table: str
    created: list[str]
    blocked: dict[str, int]  # partition that could not be made -> rows for it in DEFAULT
    rows_in_default: int
    moved: dict[str, int] = field(default_factory=dict)  # partition -> rows moved from DEFAULT


def ensure_table_partitions(
    table: PartitionedTable,
    cursor,
    *,
    ahead: int,
    today: date,
    behind: int = 1,
    skip: Collection[str] = frozenset(),
) -> PartitionReport:
    """Make the partitions from `behind` periods before today to `ahead` periods after it.

    `skip`: partition names not to make (ranges whose rows are archived).
    """
    current = table.period_start(today)
    existing = existing_partitions(table, cursor)
    created, blocked = [], {}
    for offset in range(-behind, ahead + 1):
        start = table.shift(current, offset)
        name = table.partition_name(start)
        if name in existing or name in skip:
            continue
        waiting = rows_in_default_for_range(table, cursor, start, table.shift(start, 1))
        if waiting:
            blocked[name] = waiting
            continue
        created.append(create_partition(table, cursor, start))
    return PartitionReport(
        table=table.label,
        created=created,
        blocked=blocked,
        rows_in_default=rows_in_default(table, cursor),
    )


def table_columns(table: PartitionedTable, cursor) -> list[str]:
    """The parent table's columns in their order (the shape every partition shares)."""
    cursor.execute(
        """
        SELECT attname FROM pg_attribute
         WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
         ORDER BY attnum
        """,
        [table.sql_name],
    )
    return [row[0] for row in cursor.fetchall()]


@contextmanager
def sealing_disabled(table: PartitionedTable, cursor, relation: str):
    """Insert into `relation` (the parent, or one partition) keeping the rows' own values.

    Inside a transaction, as the table's owner: `ALTER TABLE … DISABLE TRIGGER` is
    transactional, so a failure or a rollback leaves the trigger enabled.
    """
    if not table.sealed_by:
        yield
        return
    cursor.execute(f"ALTER TABLE {relation} DISABLE TRIGGER {table.sealed_by}")
    yield
    cursor.execute(f"ALTER TABLE {relation} ENABLE TRIGGER {table.sealed_by}")


def move_default_rows(table: PartitionedTable, cursor) -> dict[str, int]:
    """Give the rows sitting in DEFAULT partitions of their own periods; partition -> rows.

    PostgreSQL refuses to create a partition while DEFAULT holds rows of its range, and
    the audit log refuses DELETE, so the DEFAULT partition is swapped rather than
    emptied. Call inside a transaction (all of it commits or none): the parent is
    locked, DEFAULT detached and renamed, a new empty DEFAULT attached, a partition
    made for each period the old one holds rows of, the rows inserted again through
    the parent (each lands in its partition, with its id), the count checked, and the
    old DEFAULT dropped. DROP fires no row or TRUNCATE trigger; UPDATE, DELETE and
    TRUNCATE stay refused throughout. A sealing trigger is disabled for the insert, so
    the audit log's entries keep their ids, times and hashes (chained by quarter, they
    still link up in their own partition).
    """
    if not rows_in_default(table, cursor):
        return {}
    parent, default = table.sql_name, table.partition_sql_name(table.default_partition)
    moving = f"{table.default_partition}_moving"
    # Writers wait (bounded by the caller's lock_timeout) while the rows move.
    cursor.execute(f"LOCK TABLE {parent} IN ACCESS EXCLUSIVE MODE")
    # A timestamp without zone, so the period is the UTC one the bounds use.
    key = (
        f'"{table.key}"::timestamp'
        if table.key_is_date
        else f"(\"{table.key}\" AT TIME ZONE 'UTC')"
    )
    cursor.execute(
        f"SELECT date_trunc('{table.interval}', {key})::date AS start, count(*) "
        f"FROM {default} GROUP BY 1 ORDER BY 1"
    )
    periods = cursor.fetchall()
    cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {default}")
    cursor.execute(f'ALTER TABLE {default} RENAME TO "{moving}"')
    cursor.execute(create_default_partition_sql(table))
    moved = {create_partition(table, cursor, start): rows for start, rows in periods}
    columns = ", ".join(f'"{name}"' for name in table_columns(table, cursor))
    # Row triggers fire on the partition a row lands in: the new ones, made just now.
    with ExitStack() as unsealed:
        for name in moved:
            unsealed.enter_context(sealing_disabled(table, cursor, table.partition_sql_name(name)))
        cursor.execute(
            f"INSERT INTO {parent} ({columns}) "
            f"SELECT {columns} FROM {table.partition_sql_name(moving)}"
        )
        inserted = cursor.rowcount
    if inserted != sum(moved.values()):
        raise RuntimeError(
            f"moving rows out of {table.default_partition}: {inserted} inserted, "
            f"{sum(moved.values())} expected"
        )
    cursor.execute(f"DROP TABLE {table.partition_sql_name(moving)}")
    return moved


def initial_partitions_operation(table: PartitionedTable):
    """A migration operation creating DEFAULT plus the partitions around today."""

    ahead_setting = {MONTH: "months", QUARTER: "quarters", YEAR: "years"}[table.interval]

    def forwards(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(create_default_partition_sql(table))
            ensure_table_partitions(
                table,
                cursor,
                ahead=settings.ATLAS_PARTITIONS_AHEAD[ahead_setting],
                today=timezone.now().date(),
            )

    # Reversing the table's creation drops its partitions with it.
    return migrations.RunPython(forwards, migrations.RunPython.noop)
