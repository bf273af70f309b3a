"""Work nobody is doing is sent again: the tick's schedules and resends, and the watchdog's.

Every task is safe to deliver twice (a load claims its batch, a promotion its run,
under advisory locks), so sending one again costs at most a delivery that finds the
work done.
"""

import logging
import uuid
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from atlas_site import advisory_locks, ownership
from explore.models import BatchStatus, LandingBatch
from governance.pipeline.models import Run, RunStatus
from governance.pipeline.selectors import SCHEDULE_TRIGGER, due_datasets
from governance.pipeline.services import request_promotion, take_up_forgotten_skips
from orchestration import dispatch

logger = logging.getLogger(__name__)

# Work waiting this long has its task sent again (at most once per period). A task can
# be lost on the way: Redis was down when it was to be sent (the batch was stored, the
# run created: the request did not fail for it), or its retries ran out while the
# database was down.
STALLED_AFTER = timedelta(minutes=10)
RESENT_KEY = "atlas:resent:{}:{}"


@transaction.atomic
def tick(*, now: datetime | None = None) -> list[Run]:
    """Queue a promotion for every dataset whose schedule is due; resend stalled work."""
    now = now or timezone.now()
    resend_stalled_work(now=now)
    return [
        request_promotion(dataset=dataset, triggered_by=SCHEDULE_TRIGGER)
        for dataset in due_datasets(now=now)
    ]


def _first_resend(kind: str, pk: int) -> bool:
    try:
        return cache.add(RESENT_KEY.format(kind, pk), 1, timeout=STALLED_AFTER.total_seconds())
    except Exception:  # no cache: resend; a duplicate delivery does nothing twice
        return True


def resend_stalled_work(*, now: datetime) -> dict[str, list[int]]:
    """Send again the tasks of loads, promotions and re-protections nobody is doing.

    Returns their ids. Stalled: a batch stored or a run queued STALLED_AFTER ago and
    still waiting (at most once per period each), or a batch 'loading' / a run
    'running' whose owner is gone (`resend_ownerless_work`, which every worker's
    watchdog also runs every few seconds).
    """
    before = now - STALLED_AFTER
    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    batches = LandingBatch.objects.filter(status=BatchStatus.STORED, created_at__lt=before)
    for pk in batches.order_by("pk").values_list("pk", flat=True):
        if _first_resend("batch", pk):
            dispatch.queue_load(pk, via="resent")
            resent["batches"].append(pk)
    runs = Run.objects.filter(
        status=RunStatus.QUEUED, created_at__lt=before, kind__in=dispatch.QUEUED_KINDS
    ).order_by("pk")
    for run in runs:
        if _first_resend("run", run.pk):
            dispatch.send_run_task_on_commit(run)
            resent["runs"].append(run.pk)
    if resent["batches"] or resent["runs"]:
        logger.warning("sent again the tasks of stalled work: %s", resent)
    ownerless = resend_ownerless_work()
    return {kind: sorted(resent[kind] + ownerless[kind]) for kind in resent}


def resend_ownerless_work() -> dict[str, list[int]]:
    """Send again, at once, the task of each batch 'loading' and run 'running' whose owner
    is gone (atlas_site.ownership: its worker died, or stopped beating); returns their ids.

    Once per owner lost: the mark left here is cleared when a delivery takes the work
    up, so a second crash of the same work is sent again at once too. Each is sent
    under a task id of its own work item, the same every time: a task that keeps
    killing the worker that runs it adds up deliveries under that id and ends as a
    dead letter (orchestration.dead_letters) instead of being sent for ever.
    """
    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    loading = dict(
        LandingBatch.objects.filter(status=BatchStatus.LOADING).values_list("pk", "created_at")
    )
    for pk in ownership.ownerless(advisory_locks.LOAD_BATCH, sorted(loading)):
        if ownership.claim_resend(advisory_locks.LOAD_BATCH, pk):
            task_id = _resend_task_id("batch", pk, loading[pk])
            dispatch.queue_load(pk, via="resent", task_id=task_id)
            resent["batches"].append(pk)
    running = {
        run.pk: run
        for run in Run.objects.filter(status=RunStatus.RUNNING, kind__in=dispatch.QUEUED_KINDS)
    }
    for pk in ownership.ownerless(advisory_locks.RUN, sorted(running)):
        if ownership.claim_resend(advisory_locks.RUN, pk):
            run = running[pk]
            task_id = _resend_task_id("run", run.pk, run.created_at)
            dispatch.send_run_task_on_commit(run, task_id=task_id)
            resent["runs"].append(pk)
    if resent["batches"] or resent["runs"]:
        logger.warning("sent again the tasks of work whose owner is gone: %s", resent)
    return resent


def _resend_task_id(kind: str, pk: int, created_at: datetime) -> str:
    database = connection.settings_dict["NAME"]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"atlas:{database}:{kind}:{pk}:{created_at}"))


def watch() -> dict[str, list[int]]:
    """What every worker's watchdog does each period (orchestration.watchdog), beat or not.

    Resends the work whose owner is gone, and takes up the skipped promotions nobody
    took up (governance.pipeline.services.take_up_forgotten_skips). Returns the ids of
    the batches and runs sent again, and the follow-up runs queued.
    """
    resent = resend_ownerless_work()
    follow_ups = take_up_forgotten_skips()
    return {**resent, **({"follow_ups": [run.pk for run in follow_ups]} if follow_ups else {})}
