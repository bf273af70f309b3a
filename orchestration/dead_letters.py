"""Dead letters: a task that keeps crashing its worker is set aside instead of looping.

Atlas's tasks are acknowledged late and re-queued when their worker dies
(`task_acks_late`, `task_reject_on_worker_lost`), so nothing is lost when a worker is
killed. The flip side: a task that itself kills its worker (a segfault in a C
extension, an out-of-memory kill, `os._exit`) would be delivered again and again,
forever. So every delivery of a task counts itself in the cache (Redis) under the
task's id when it starts, and clears the count when it ends in any way a Python
process can end (success, failure, retry). A count that survives therefore counts
deliveries whose worker died under them. The delivery past ATLAS_MAX_DELIVERIES is
not run: it is recorded as a DeadLetter (stewards see them in the admin), the run or
batch it was working on is failed with the reason, and the message is acknowledged.

Every Atlas task is an `AtlasTask` (below; atlas_site.celery names it as the app's task
class), whose call counts its deliveries here.
"""

import inspect
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from explore.models import BatchStatus, LandingBatch
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import DeadLetter, Run, RunKind, RunStatus
from governance.pipeline.services import ENDED, finish_run

logger = logging.getLogger(__name__)

COUNT_KEY = "atlas:task-deliveries:{}"
LAST_KEY = "atlas:task-delivery-last:{}"
# Longer than several visibility timeouts: a killed solo worker's message comes back
# only after one (an hour by default), and the count must still be there.
COUNT_TIMEOUT = int(timedelta(days=7).total_seconds())


def max_deliveries() -> int:
    return getattr(settings, "ATLAS_MAX_DELIVERIES", 3)


@dataclass(frozen=True)
class Delivery:
    """This delivery's number, and what the previous delivery (if any) left behind."""

    number: int
    first_seen_at: datetime
    previous: dict[str, Any] | None


def begin_delivery(*, task_id: str, hostname: str = "") -> Delivery | None:
    """Count a delivery of `task_id` as started. None when the cache cannot be reached.

    A cache outage must not stop work: the task then runs uncounted.
    """
    now = timezone.now()
    try:
        previous = cache.get(LAST_KEY.format(task_id))
        cache.add(COUNT_KEY.format(task_id), 0, timeout=COUNT_TIMEOUT)
        number = cache.incr(COUNT_KEY.format(task_id))
        first_seen = previous["first_seen_at"] if previous else now.isoformat()
        cache.set(
            LAST_KEY.format(task_id),
            {
                "delivery": number,
                "started_at": now.isoformat(),
                "first_seen_at": first_seen,
                "hostname": hostname,
                "pid": os.getpid(),
            },
            timeout=COUNT_TIMEOUT,
        )
    except Exception:
        logger.warning("could not count the delivery of task %s", task_id, exc_info=True)
        return None
    return Delivery(
        number=number, first_seen_at=datetime.fromisoformat(first_seen), previous=previous
    )


def end_delivery(*, task_id: str) -> None:
    """The delivery ended without its worker dying: it does not count towards the bound."""
    try:
        cache.delete_many([COUNT_KEY.format(task_id), LAST_KEY.format(task_id)])
    except Exception:
        logger.warning("could not clear the delivery count of task %s", task_id, exc_info=True)


def lost_worker_error(previous: dict[str, Any] | None) -> str:
    if not previous:
        return "its worker died before the task ended"
    return (
        f"delivery {previous['delivery']} started at {previous['started_at']} on "
        f"{previous['hostname'] or 'a worker'} (pid {previous['pid']}) never ended: its "
        "worker process died (killed, out of memory or crashed) before the task finished"
    )


def _arguments(run_function, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The task's arguments by parameter name (Atlas's tasks take ids: run_id, batch_id)."""
    try:
        return dict(inspect.signature(run_function).bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return dict(kwargs)


def _fail_affected(arguments: dict[str, Any], reason: str) -> Run | None:
    """Fail the run (or the batch and its load) the task was working on; return the run."""
    run = None
    if isinstance(arguments.get("run_id"), int):
        run = Run.objects.filter(pk=arguments["run_id"]).first()
    elif isinstance(arguments.get("batch_id"), int):
        batch_id = arguments["batch_id"]
        LandingBatch.objects.filter(
            pk=batch_id, status__in=[BatchStatus.STORED, BatchStatus.LOADING]
        ).update(status=BatchStatus.FAILED, error=reason[:5000])
        run = (
            Run.objects.filter(kind=RunKind.INGEST, detail__batch_id=batch_id)
            .order_by("-pk")
            .first()
        )
    if run is not None and run.status not in ENDED:
        # A promotion keeps what its committed chunks wrote; a load kept nothing.
        finish_run(run, RunStatus.FAILED, error=reason, kept=run.kind != RunKind.INGEST)
    return run


@transaction.atomic
def set_aside(
    *,
    task_name: str,
    task_id: str,
    run_function,
    args: tuple,
    kwargs: dict,
    queue: str,
    delivery: Delivery,
) -> DeadLetter:
    """Record the task as a dead letter and fail what it was working on."""
    last_error = lost_worker_error(delivery.previous)
    crashes = delivery.number - 1
    reason = (
        f"dead letter: task {task_name}[{task_id}] crashed its worker {crashes} times "
        f"(ATLAS_MAX_DELIVERIES={max_deliveries()}); it was set aside and not run again. "
        f"Last: {last_error}"
    )
    run = _fail_affected(_arguments(run_function, args, kwargs), reason)
    letter, _ = DeadLetter.objects.update_or_create(
        task_id=task_id,
        defaults={
            "task_name": task_name,
            "args": list(args),
            "kwargs": dict(kwargs),
            "queue": queue or "",
            "deliveries": crashes,
            "last_error": last_error,
            "first_seen_at": delivery.first_seen_at,
            "last_seen_at": timezone.now(),
            "run": run,
        },
    )
    record_audit(actor="celery", action=AuditAction.ACTION, instance=letter, detail=reason)
    logger.error("%s", reason)
    return letter


class AtlasTask(DjangoTask):
    """Every Atlas task: a message that keeps crashing its worker ends as a dead letter.

    Deliveries are counted when they start and the count is cleared when they end, so
    only deliveries whose worker died under them add up (see above). Past
    ATLAS_MAX_DELIVERIES the task is not run: it is set aside and its message
    acknowledged, instead of being delivered forever. Based on Celery's DjangoTask (what
    Celery uses under Django when no class is given), for `delay_on_commit` and
    `apply_async_on_commit`.
    """

    def __call__(self, *args, **kwargs):
        request = self.request
        if request.called_directly or request.is_eager or not request.id:
            return super().__call__(*args, **kwargs)
        delivery = begin_delivery(task_id=request.id, hostname=request.hostname or "")
        if delivery is not None and delivery.number > max_deliveries():
            set_aside(
                task_name=self.name,
                task_id=request.id,
                run_function=self.run,
                args=args,
                kwargs=kwargs,
                queue=(request.delivery_info or {}).get("routing_key") or "",
                delivery=delivery,
            )
            end_delivery(task_id=request.id)
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            end_delivery(task_id=request.id)
