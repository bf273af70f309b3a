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
# Transaction locks (freed at commit or rollback).
LOAD_DATASET = 7311  # dataset id: loads of one dataset commit one by one
PARTITION_DDL = 7321  # index in atlas_site.partitions.PARTITIONED_TABLES: DDL per table


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


def is_held(namespace: int, key: int) -> bool:
    """Whether any session holds the session lock (namespace, key); takes nothing."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 2)",
            [namespace, key],
        )
        return cursor.fetchone()[0]
