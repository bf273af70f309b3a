"""One scheduler (celery beat) at a time, however many are started.

Two beats would send every periodic task twice: two ticks a minute, two alert evaluations,
two retention runs. `SingleBeatScheduler` holds a PostgreSQL advisory lock (session level,
on a connection of its own) while it sends anything; a second beat started by mistake, or
a standby on another host, finds the lock taken, sends nothing and tries again every
STANDBY_SECONDS. The lock goes with its session: a beat that dies (or loses its database)
frees it at once, and a standby takes over within STANDBY_SECONDS. The schedule itself
is Celery's (settings.CELERY_BEAT_SCHEDULE; daily work at set hours by crontab, so a
restart does not move it).
"""

import contextlib
import logging
import threading

from celery.beat import PersistentScheduler
from django.db import connections
from psycopg import Error as DatabaseError

from atlas_site import advisory_locks

logger = logging.getLogger(__name__)

STANDBY_SECONDS = 5.0

# Set while this process's scheduler holds the lock: the beat's liveness thread says it is
# alive only then (orchestration.liveness), so a standby cannot hide a silent scheduler.
ACTIVE = threading.Event()


class SingleBeatScheduler(PersistentScheduler):
    """Celery's PersistentScheduler that sends only while it holds the beat lock."""

    def __init__(self, *args, **kwargs):
        self._lock_connection = None
        self._standing_by = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        if not self._holds_lock():
            return STANDBY_SECONDS
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        self._let_go()
        super().close()

    def _holds_lock(self) -> bool:
        try:
            if self._lock_connection is None:
                self._lock_connection = _connect()
                ACTIVE.clear()
            if ACTIVE.is_set():
                # Still ours while the session lives; a query finds out that it does.
                self._lock_connection.execute("SELECT 1")
                return True
            row = self._lock_connection.execute(
                "SELECT pg_try_advisory_lock(%s, 0)", [advisory_locks.BEAT]
            ).fetchone()
        except DatabaseError:
            logger.warning("beat: lost the database; nothing is sent until it is back")
            self._let_go()
            return False
        if row and row[0]:
            ACTIVE.set()
            self._standing_by = False
            logger.info("beat: took the scheduler lock; sending the periodic tasks")
            return True
        if not self._standing_by:
            logger.warning("beat: another scheduler holds the lock; standing by (sending nothing)")
            self._standing_by = True
        return False

    def _let_go(self) -> None:
        ACTIVE.clear()
        if self._lock_connection is not None:
            with contextlib.suppress(DatabaseError):
                self._lock_connection.close()  # the session's end frees the lock
            self._lock_connection = None


def _connect():
    """A connection of the scheduler's own, with Django's settings, in autocommit: Django's
    own may be closed between requests, and a session lock must outlive those."""
    wrapper = connections["default"]
    connection = wrapper.get_new_connection(wrapper.get_connection_params())
    connection.autocommit = True
    return connection
