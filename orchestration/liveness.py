"""Workers and the scheduler (beat) say they are alive, and each watches the other's alerts.

The alert rules are evaluated by a task beat sends every minute and a worker runs, so
neither "no worker" nor "no beat" could ever be told by that task alone. Each worker
and each beat process therefore runs a thread that writes its heartbeat (pipeline's
`Heartbeat`, in PostgreSQL: it must outlive a broker restart) every
ATLAS_LIVENESS_SECONDS, and evaluates the alert rules itself when nobody did for
EVALUATION_OVERDUE: with beat silent the workers still evaluate (and find beat silent),
with every worker silent beat does (and finds the workers silent). Both silent: the
operators' path (/metrics and the Prometheus rules) tells it. 0 turns the threads off.
"""

import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from governance.pipeline.models import Heartbeat
from orchestration import alerts
from orchestration.beat import ACTIVE as BEAT_ACTIVE

logger = logging.getLogger(__name__)

WORKER, BEAT = "worker", "beat"
# The scheduled evaluation runs every minute: this late, its sender or its runner is gone.
EVALUATION_OVERDUE = timedelta(minutes=3)
# Heartbeats of nodes not seen for this long are forgotten (a host renamed or retired).
FORGET_AFTER = timedelta(days=7)

_stop = threading.Event()
_threads: dict[str, threading.Thread] = {}


def interval() -> float:
    return float(getattr(settings, "ATLAS_LIVENESS_SECONDS", 30))


def beat(component: str, node: str, *, now: datetime | None = None) -> None:
    """Record that `node` of `component` is alive now."""
    now = now or timezone.now()
    Heartbeat.objects.update_or_create(component=component, node=node, defaults={"seen_at": now})


def evaluation_overdue(*, now: datetime | None = None) -> bool:
    """Whether nobody evaluated the alert rules for EVALUATION_OVERDUE."""
    now = now or timezone.now()
    last = (
        Heartbeat.objects.filter(component=alerts.EVALUATED)
        .values_list("seen_at", flat=True)
        .first()
    )
    return last is None or now - last > EVALUATION_OVERDUE


def look(component: str, node: str, *, now: datetime | None = None) -> alerts.Evaluation | None:
    """One look: say this node is alive; evaluate the alerts when nobody did lately."""
    now = now or timezone.now()
    beat(component, node, now=now)
    Heartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
    if not evaluation_overdue(now=now):
        return None
    logger.warning(
        "%s %s: the alert rules were not evaluated for %s; evaluating them here",
        component,
        node,
        EVALUATION_OVERDUE,
    )
    return alerts.evaluate_alerts(now=now)


def start(
    component: str, node: str, *, active: Callable[[], bool] | None = None
) -> threading.Thread | None:
    """Start this process's liveness thread (once); None when turned off. `active`: whether
    this process is doing its component's work now (a beat standing by is not)."""
    seconds = interval()
    if seconds <= 0:
        return None
    running = _threads.get(component)
    if running is not None and running.is_alive():
        return running
    _stop.clear()
    thread = threading.Thread(
        target=_loop,
        args=(component, node, seconds, active),
        name=f"atlas-liveness-{component}",
        daemon=True,
    )
    _threads[component] = thread
    thread.start()
    return thread


def stop() -> None:
    _stop.set()


def _loop(component: str, node: str, seconds: float, active: Callable[[], bool] | None) -> None:
    failing = False
    while not _stop.is_set():
        try:
            if active is None or active():
                look(component, node)
            failing = False
        except Exception:
            # The database is away: the next look tries again (said once).
            if not failing:
                logger.warning(
                    "%s %s could not record its heartbeat", component, node, exc_info=True
                )
            failing = True
        finally:
            connections.close_all()
        _stop.wait(seconds)


def start_on_worker_ready(sender=None, **kwargs) -> None:
    """Celery's worker_ready."""
    start(WORKER, getattr(sender, "hostname", "") or f"celery@{socket.gethostname()}")


def start_on_beat_init(sender=None, **kwargs) -> None:
    """Celery's beat_init: only the beat holding the scheduler lock says it is alive."""
    start(BEAT, f"beat@{socket.gethostname()}", active=BEAT_ACTIVE.is_set)


def stop_on_shutdown(**kwargs) -> None:
    stop()
