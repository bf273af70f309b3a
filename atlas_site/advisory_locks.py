"""PostgreSQL advisory locks: every namespace Atlas uses, and the session lock they share.

`pg_advisory_lock(namespace, key)`: each namespace is one kind of lock, its key an id.
They are all listed here so that no two kinds ever share a namespace.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import Error, connection

logger = logging.getLogger(__name__)

# Session locks (held across transactions, freed when the session ends).
PROMOTE_CHART = 7301  # dataset id: one explore → chart promotion per dataset
PROMOTE_NAVIGATE = 7302  # dataset id: one chart → navigate promotion per dataset
RUN = 7303  # run id: the one delivery of a task that owns its run
LOAD_BATCH = 7310  # batch id: one loader per batch
RETENTION = 7320  # key 0: one retention run at a time
BEAT = 7322  # key 0: one scheduler (celery beat) sends the periodic tasks
# Transaction locks (freed at commit or rollback).
LOAD_DATASET = 7311  # dataset id: loads of one dataset commit one by one
PROMOTION_CHUNKS = 7304  # run id: the next chunk of a shared promotion is read by one worker
PARTITION_DDL = 7321  # index in atlas_site.partitions.PARTITIONED_TABLES: DDL per table
WATCHDOG = 7330  # key 0: one worker's watchdog looks for ownerless work at a time
ALERTS = 7331  # key 0: one evaluation of the alert rules at a time
REPORTING_VIEWS = 7350  # key 0: one rebuild of the reporting schema's views at a time
AUDIT_CHAIN = 7340  # year * 10 + quarter: appends to one quarter's audit chain (taken by
# the trigger compliance.audit_log_seal(), whose SQL repeats the number)


@contextmanager
def try_session_lock(namespace: int, key: int) -> Iterator[bool]:
    """Yield whether this session got the lock; release it on the way out.

    A killed worker's connection closes, and PostgreSQL frees its locks with it, so a
    crash never leaves a lock held.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
            except Error:
                # The connection is gone (the error on its way out says why), and the
                # lock went with it.
                logger.warning("could not release advisory lock (%s, %s)", namespace, key)


# Advisory locks are the server's, not a database's: pg_locks lists those of every
# database, so each look-up keeps to the current one.
_HELD = """
    SELECT objid, pid FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND objsubid = 2
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid = %s AND objid = ANY(%s)
"""


def is_held(namespace: int, key: int) -> bool:
    """Whether any session holds the session lock (namespace, key); takes nothing."""
    return key in holders(namespace, [key])


def holders(namespace: int, keys: list[int]) -> dict[int, int]:
    """key -> backend pid of the session holding the session lock (namespace, key)."""
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_HELD, [namespace, list(keys)])
        return dict(cursor.fetchall())
