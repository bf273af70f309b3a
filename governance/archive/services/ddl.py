"""What every piece of partition DDL after the migrations shares: the lock it takes on
its table, and the error that refuses it."""

from django.conf import settings

from atlas_site import advisory_locks
from atlas_site.partitions import PARTITIONED_TABLES, PartitionedTable


class ArchiveError(Exception):
    """An archive, a verification or a restore that cannot go on; the message says why."""


def lock_table(cursor, table: PartitionedTable) -> None:
    """Serialise partition DDL on one table (this transaction); bound lock waits."""
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)",
        [advisory_locks.PARTITION_DDL, PARTITIONED_TABLES.index(table)],
    )
    cursor.execute(
        "SELECT set_config('lock_timeout', %s, true)", [settings.ATLAS_ARCHIVE_LOCK_TIMEOUT]
    )
    # Foreign keys are checked at commit by default; PostgreSQL refuses to drop a table
    # with such checks pending (rows written earlier in an enclosing transaction).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
