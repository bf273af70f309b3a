"""Sending the tasks that do queued work: which task takes up which run or batch.

The one place that knows the layers' task names. Runs are created by governance's
requests (`governance.pipeline.services.request_*`), batches by explore's stores; their
tasks are sent here, once the transaction that created them commits, so the worker
finds them. A broker outage does not undo the work's creation: it stays queued or
stored, and `orchestration.recovery` sends it again.
"""

import logging
import threading
from functools import partial

from django.conf import settings
from django.db import transaction

from chart.tasks import help_promote_to_chart, promote_to_chart, reprotect_chart
from explore.tasks import load_batch
from governance.archive.tasks import maintenance_task_options
from governance.pipeline.models import Layer, Run, RunKind
from navigate import reporting
from navigate.tasks import build_reporting_views, promote_to_navigate

logger = logging.getLogger(__name__)

# The runs a worker takes up from a queue (a re-processing run is a person's request,
# run on their page; an ingest run goes with its batch; an archive run with its task).
QUEUED_KINDS = (RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE, RunKind.REPROTECT)


class QueueError(Exception):
    """A load's task could not be sent (the broker is unreachable); its batch stays stored."""


def promotion_task_options() -> dict:
    """Options of promotion tasks: the ATLAS_PROMOTION_QUEUE setting, when one is set."""
    queue = getattr(settings, "ATLAS_PROMOTION_QUEUE", None)
    return {"queue": queue} if queue else {}


def load_task_options() -> dict:
    """Options of load tasks: the ATLAS_INGEST_QUEUE setting, when one is set."""
    queue = getattr(settings, "ATLAS_INGEST_QUEUE", None)
    return {"queue": queue} if queue else {}


def send_run_task(run: Run, *, task_id: str | None = None, countdown: float | None = None):
    """Send now the task that takes up `run` (one of QUEUED_KINDS)."""
    options = promotion_task_options()
    if task_id:
        options["task_id"] = task_id
    if countdown:
        options["countdown"] = countdown
    if run.kind == RunKind.PROMOTE_CHART:
        # The second argument is kept for messages sent before the next step was
        # decided here (orchestration.reactions); the task ignores it.
        onwards = (run.detail or {}).get("to_layer") == Layer.NAVIGATE
        return promote_to_chart.apply_async((run.pk, onwards), **options)
    if run.kind == RunKind.PROMOTE_NAVIGATE:
        return promote_to_navigate.apply_async((run.pk,), **options)
    if run.kind == RunKind.REPROTECT:
        return reprotect_chart.apply_async((run.pk,), **options)
    raise ValueError(f"no task takes up a run of kind {run.kind!r} (run {run.pk})")


def send_promotion_helpers(run: Run, helpers: int) -> None:
    """Ask `helpers` more workers to share a running promotion's chunks, after commit."""

    def send() -> None:
        for _ in range(helpers):
            help_promote_to_chart.apply_async((run.pk,), **promotion_task_options())

    transaction.on_commit(send, robust=True)


def send_run_task_on_commit(run: Run, **options) -> None:
    """Send the run's task once this transaction commits (a broker outage is logged)."""
    transaction.on_commit(partial(send_run_task, run, **options), robust=True)


def send_load(batch_id: int, *, via: str = "upload", task_id: str | None = None) -> None:
    """Send the batch's load task now; QueueError, with a one-line reason, when it cannot be.

    For callers that must report the failure (manage.py ingest), unlike queue_load.
    """
    options = load_task_options()
    if task_id:
        options["task_id"] = task_id
    try:
        load_batch.apply_async((batch_id, via), **options)
    except Exception as exc:
        cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise QueueError(
            f"batch {batch_id} is stored, but its load could not be queued: the broker "
            f"(Redis) cannot be reached ({cause}); the batch loads once it is sent again "
            "(the pipeline's tick resends it, or Load again on the batch list)"
        ) from exc


def load_queue() -> str:
    """The queue the load tasks go to (ATLAS_INGEST_QUEUE, else Celery's default queue)."""
    return load_task_options().get("queue") or load_batch.app.conf.task_default_queue


def workers_consuming(queue: str, *, timeout: float = 2.0) -> list[str]:
    """The Celery workers that answer within `timeout` seconds and consume `queue`."""
    replies = load_batch.app.control.inspect(timeout=timeout).active_queues() or {}
    return sorted(
        worker
        for worker, queues in replies.items()
        if any(item.get("name") == queue for item in queues or [])
    )


def queue_load(batch_id: int, *, via: str = "upload", task_id: str | None = None) -> None:
    """Queue the batch's load once the current transaction commits.

    robust: if the broker cannot be reached, the batch stays 'stored' (sent again by the
    tick, or by 'Load again') instead of failing the request that stored it.
    """
    transaction.on_commit(partial(send_load, batch_id, via=via, task_id=task_id), robust=True)


# Changes waiting for their transaction's commit to rebuild the reporting views: one
# rebuild for a whole contract import, however many fields it saves.
_reporting = threading.local()


def queue_reporting_rebuild() -> None:
    """Rebuild the reporting views once the current transaction commits."""
    _reporting.pending = True
    transaction.on_commit(rebuild_reporting_views_now, robust=True)


def rebuild_reporting_views_now() -> None:
    """Rebuild here when this role owns the reporting schema (one-role deploys, the owner);
    otherwise, or when a reader's query holds a view too long, on the maintenance worker,
    which retries with backoff. A change is never refused for its views' sake."""
    if not getattr(_reporting, "pending", False):
        return  # an earlier callback of the same commit rebuilt them
    _reporting.pending = False
    try:
        if reporting.can_build():
            reporting.build_reporting_views()
            return
    except reporting.ReportingBuildError as error:
        logger.warning("reporting views not rebuilt here, sent to a worker: %s", error)
    build_reporting_views.apply_async(**maintenance_task_options())
