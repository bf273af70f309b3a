"""Every worker's watchdog: work nobody is doing is sent again within seconds, beat or not.

A worker SIGKILLed mid-load or mid-promotion leaves its batch 'loading' or its run
'running', and its task's message unacknowledged in Redis, which would hand it to
another worker only after the visibility timeout (an hour). The watchdog does not wait:
a thread in each worker's main process, started when the worker is ready, looks every
ATLAS_WATCHDOG_SECONDS (and once straight away, so a worker starting up takes up what
died before it) for work whose owner is gone (atlas_site.ownership: its lock free, or
held by a session whose owner stopped beating) and sends its task again; sends again every
stored batch and queued run when the broker lost messages (Redis restarted empty, or
unreachable for all of them); and takes up skipped promotions nobody took up
(`recovery.watch`). One worker of all of them acts per period (a cache mark, and a
transaction lock for the moment it acts). Beat's tick resends ownerless and long-waiting
work every minute; neither needs the other. 0 turns the watchdog off.

Every task is safe to deliver twice, so a message sent again while the first one is
still somewhere costs a delivery that finds the work taken or done.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction

from atlas_site import advisory_locks
from orchestration.recovery import watch

logger = logging.getLogger(__name__)

TICK_KEY = "atlas:watchdog-tick"

_stop = threading.Event()
_thread: threading.Thread | None = None


def interval() -> float:
    return float(getattr(settings, "ATLAS_WATCHDOG_SECONDS", 5))


def start(*, hostname: str = "") -> threading.Thread | None:
    """Start this process's watchdog thread (once); None when it is turned off."""
    global _thread
    seconds = interval()
    if seconds <= 0:
        logger.info("the watchdog is off (ATLAS_WATCHDOG_SECONDS=%s)", seconds)
        return None
    if _thread is not None and _thread.is_alive():
        return _thread
    _stop.clear()
    _thread = threading.Thread(
        target=_loop, args=(seconds, hostname), name="atlas-watchdog", daemon=True
    )
    _thread.start()
    return _thread


def stop() -> None:
    _stop.set()


def start_on_worker_ready(sender=None, **kwargs) -> None:
    """Celery's worker_ready: every worker looks for work whose owner died."""
    start(hostname=getattr(sender, "hostname", "") or "")


def stop_on_shutdown(**kwargs) -> None:
    """Celery's worker_shutting_down."""
    stop()


def _loop(seconds: float, hostname: str) -> None:
    logger.info("watchdog of %s: looking for ownerless work every %s s", hostname, seconds)
    failing = False
    starting = True
    while not _stop.is_set():
        try:
            # The first look is this worker's own, whoever looked last: a worker starting
            # up takes up at once what died before it.
            tick(seconds=seconds, force=starting)
            failing = starting = False
        except Exception:
            # The database or Redis is away: the next tick tries again (said once).
            if not failing:
                logger.warning("the watchdog could not look for ownerless work", exc_info=True)
            failing = True
        finally:
            # No connection stays open between ticks (nor is copied into a pool process
            # forked meanwhile).
            connections.close_all()
        _stop.wait(seconds)


def _first_this_period(seconds: float) -> bool:
    try:
        return cache.add(TICK_KEY, time.time(), timeout=max(1, int(seconds * 0.8)))
    except Exception:  # no cache: every watchdog looks; the transaction lock orders them
        return True


def tick(*, seconds: float | None = None, force: bool = False) -> dict[str, list[int]] | None:
    """Send again the work nobody is doing (`recovery.watch`); None when another worker's
    watchdog acts (it looked within this period, or is looking now)."""
    period = interval() if seconds is None else seconds
    if not _first_this_period(period) and not force:
        return None
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, 0)", [advisory_locks.WATCHDOG])
            if not cursor.fetchone()[0]:
                return None
        return watch()
