"""Who owns a piece of work, judged directly: the session holding its lock, and a heartbeat.

A load holds its batch's LOAD_BATCH session lock and a promotion its run's RUN lock
(atlas_site.advisory_locks) for as long as it works on them. `owned()` takes such a
lock and, while it is held, a thread of the owning process writes a heartbeat into the
cache (Redis) every ATLAS_HEARTBEAT_SECONDS: when, from which host and process, and the
PostgreSQL backend (session) that holds the lock. A thread, so that an owner waiting on
a lock or a long statement keeps beating.

`ownerless()` tells which of some work the database says is under way has lost its
owner:

- no session holds its lock: the owner's session ended (its worker died, PostgreSQL
  freed the lock);
- the session holding it is the one its heartbeat names, and that heartbeat stopped
  more than ATLAS_OWNER_TIMEOUT_SECONDS ago (seen so twice, a heartbeat apart): the
  owning process is dead or stuck while something keeps its session open (a stray
  process holding its socket). That session is ended (pg_terminate_backend), which
  frees the lock.

Anything else is an owner at work, or a new owner that has not beaten yet. A missing
heartbeat (Redis restarted empty, the cache unreachable) decides nothing: the lock does.
A heartbeat's time is its owner's clock, read against the watchdog's: the hosts' clocks
must agree to within a few seconds (NTP), well under the timeout.

`claim_resend()` lets work be sent again once per owner: the mark it leaves is cleared
when a new owner takes the lock (so a second crash of the same work is resent at once
too), and expires after ATLAS_RESEND_AGAIN_SECONDS in case the message sent was lost.
"""

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from atlas_site import advisory_locks

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "atlas:heartbeat:{}:{}:{}"  # database, namespace, key
STOPPED_KEY = "atlas:heartbeat-stopped:{}:{}:{}"
RESENT_KEY = "atlas:resent-ownerless:{}:{}:{}"
# A heartbeat is kept this long after its last beat (a stopped one must stay visible).
HEARTBEAT_TTL = 24 * 60 * 60


def heartbeat_seconds() -> float:
    return float(getattr(settings, "ATLAS_HEARTBEAT_SECONDS", 5))


def owner_timeout() -> float:
    return float(getattr(settings, "ATLAS_OWNER_TIMEOUT_SECONDS", 15))


def resend_again_seconds() -> float:
    return float(getattr(settings, "ATLAS_RESEND_AGAIN_SECONDS", 120))


def _database() -> str:
    return connection.settings_dict["NAME"]


def _key(template: str, namespace: int, key: int) -> str:
    return template.format(_database(), namespace, key)


# --- The owner's side ---------------------------------------------------------------------


class _Heartbeats:
    """The heartbeats this process writes, and the one thread that writes them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._beating: dict[str, dict] = {}  # cache key -> what the heartbeat says
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._failing_since: float | None = None

    def add(self, cache_key: str, record: dict) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked process: the parent's beats are not ours
                self._beating.clear()
                self._thread = None
                self._pid = os.getpid()
            self._beating[cache_key] = record
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="atlas-heartbeat", daemon=True
                )
                self._thread.start()
        self._write({cache_key: record})

    def remove(self, cache_key: str) -> None:
        with self._lock:
            self._beating.pop(cache_key, None)
        try:
            cache.delete(cache_key)
        except Exception:  # expires by itself; the lock says the owner is gone
            logger.debug("could not delete heartbeat %s", cache_key, exc_info=True)

    def _run(self) -> None:
        while True:
            time.sleep(heartbeat_seconds())
            with self._lock:
                if self._pid != os.getpid():
                    return
                beating = dict(self._beating)
            if beating:
                self._write(beating)

    def _write(self, beating: dict[str, dict]) -> None:
        now = time.time()
        try:
            cache.set_many(
                {key: {**record, "at": now} for key, record in beating.items()},
                timeout=HEARTBEAT_TTL,
            )
        except Exception:
            # Work goes on without its heartbeat (the lock still says it is owned); said
            # once a minute at most.
            if self._failing_since is None or now - self._failing_since > 60:
                self._failing_since = now
                logger.warning("could not write heartbeats", exc_info=True)
        else:
            self._failing_since = None


_heartbeats = _Heartbeats()


@contextmanager
def owned(namespace: int, key: int) -> Iterator[bool]:
    """Take the session lock (namespace, key) and beat for it while it is held.

    Yields whether this session got the lock (like advisory_locks.try_session_lock).
    """
    with advisory_locks.try_session_lock(namespace, key) as acquired:
        if not acquired:
            yield False
            return
        heartbeat = _key(HEARTBEAT_KEY, namespace, key)
        _heartbeats.add(
            heartbeat,
            {
                "backend": connection.connection.info.backend_pid,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        try:
            cache.delete(_key(RESENT_KEY, namespace, key))  # a new owner: resend it if it dies
        except Exception:
            logger.debug("could not clear the resend mark of (%s, %s)", namespace, key)
        try:
            yield True
        finally:
            _heartbeats.remove(heartbeat)


def heartbeat_of(namespace: int, key: int) -> dict | None:
    """What the owner of (namespace, key) last said: backend, host, pid and `at` (epoch s)."""
    return cache.get(_key(HEARTBEAT_KEY, namespace, key))


# --- The watchdog's side ------------------------------------------------------------------


def ownerless(namespace: int, keys: list[int]) -> list[int]:
    """Those of `keys` whose owner is gone; a stray session holding one's lock is ended."""
    held = advisory_locks.holders(namespace, keys)
    gone = [key for key in keys if key not in held]
    if not held:
        return gone
    try:
        beats = cache.get_many([_key(HEARTBEAT_KEY, namespace, key) for key in held])
    except Exception:  # no heartbeats to read: the locks decide
        logger.warning("could not read heartbeats", exc_info=True)
        return gone
    now = time.time()
    for key, backend in held.items():
        beat = beats.get(_key(HEARTBEAT_KEY, namespace, key))
        if (
            beat
            and beat.get("backend") == backend
            and now - beat.get("at", now) > owner_timeout()
            and _stopped_twice(namespace, key, backend, now)
            and end_session(namespace, key, backend, beat)
        ):
            gone.append(key)
    return sorted(gone)


def _stopped_twice(namespace: int, key: int, backend: int, now: float) -> bool:
    """Whether the heartbeat was already seen stopped a heartbeat ago (and still is).

    An owner that could not reach Redis for a while beats again once it can; seen
    twice, the stop is not that.
    """
    marker = _key(STOPPED_KEY, namespace, key)
    seen = cache.get(marker)
    if seen and seen.get("backend") == backend:
        return now - seen["since"] >= heartbeat_seconds()
    cache.set(marker, {"backend": backend, "since": now}, timeout=int(4 * owner_timeout()) + 60)
    return False


def end_session(namespace: int, key: int, backend: int, beat: dict | None = None) -> bool:
    """End the session `backend` if it still holds (namespace, key); whether it ended."""
    logger.warning(
        "the owner of lock (%s, %s) stopped its heartbeat (%s); ending its session %s, "
        "which still holds the lock",
        namespace,
        key,
        beat,
        backend,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid = %s AND objid = %s AND pid = %s",
                [namespace, key, backend],
            )
            row = cursor.fetchone()
    except Exception:  # another role's session, say: the lock stays where it is
        logger.warning("could not end session %s", backend, exc_info=True)
        return False
    return bool(row and row[0])


def claim_resend(namespace: int, key: int) -> bool:
    """Whether to send the work of (namespace, key) again now (once per owner lost)."""
    try:
        return cache.add(
            _key(RESENT_KEY, namespace, key), time.time(), timeout=resend_again_seconds()
        )
    except Exception:  # no cache: send; a duplicate delivery does nothing twice
        return True
