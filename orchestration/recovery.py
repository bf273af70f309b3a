"""Work nobody is doing is sent again: the tick's schedules and resends, and the watchdog's.

Every task is safe to deliver twice (a load claims its batch, a promotion its run,
under advisory locks), so sending one again costs at most a delivery that finds the
work done.
"""

import json
import logging
import uuid
from datetime import datetime, timedelta
from functools import partial

import redis
from django.conf import settings
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

    Resends the work whose owner is gone, every stored batch and queued run when the
    broker lost messages (`resend_if_broker_lost`), and takes up the skipped promotions
    nobody took up (governance.pipeline.services.take_up_forgotten_skips). Returns the
    ids of the batches and runs sent again, and the follow-up runs queued.
    """
    resent = resend_ownerless_work()
    lost = resend_if_broker_lost()
    follow_ups = take_up_forgotten_skips()
    return {
        "batches": sorted(set(resent["batches"]) | set(lost["batches"])),
        "runs": sorted(set(resent["runs"]) | set(lost["runs"])),
        **({"follow_ups": [run.pk for run in follow_ups]} if follow_ups else {}),
    }


# --- The broker lost messages -------------------------------------------------------------
#
# A message sent but never delivered is lost when Redis loses its data: restarted without
# persistence (or with the last second of an append-only file not yet written), flushed,
# failed over to a replica behind it; and a message is never sent while Redis cannot be
# reached (the batch stays stored, the run queued). Nothing in PostgreSQL tells a stored
# batch whose message waits in Redis from one whose message is gone, and waiting
# STALLED_AFTER to find out took 10 minutes. So the watchdog watches Redis itself: it
# leaves a mark in the broker's Redis (its server's run_id, and Redis's own clock), and
# each look compares it with what Redis says now. The mark gone (data lost, or the first
# look ever), another run_id (Redis restarted), or older than BROKER_QUIET_SECONDS (no
# watchdog could reach Redis meanwhile, or none was running: work stored then may have
# no message) means messages may be missing, and every stored batch and queued run is
# sent again at once. Comparing with Redis's own state, not a copy kept here, makes it
# one decision for all workers (the watchdog's transaction lock orders them) and free of
# the clocks of the hosts. The mark is written after the resends are sent: if they
# cannot be, the next look finds the old mark and sends them again.
#
# A resend may duplicate a message that was not lost: every delivery is idempotent (a
# load claims its batch, a promotion its run, under advisory locks), so the cost is one
# delivery per item that finds its work taken or done. Each goes under the task id of
# its work item (`_resend_task_id`), as the ownerless resends do, so a task that keeps
# killing its worker still adds up deliveries and ends as a dead letter.

BROKER_MARK_KEY = "atlas:broker-mark:{}"  # the database's name
# At least this long, and three watchdog periods, without a look counts as unwatched.
BROKER_QUIET_SECONDS = 30

_broker_clients: dict[str, redis.Redis] = {}


def _broker_client() -> redis.Redis | None:
    """A client of the broker's Redis (None for another broker)."""
    url: str = settings.CELERY_BROKER_URL or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    if url not in _broker_clients:
        _broker_clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return _broker_clients[url]


def _quiet_seconds() -> float:
    return max(BROKER_QUIET_SECONDS, 3 * float(getattr(settings, "ATLAS_WATCHDOG_SECONDS", 5)))


def broker_loss(client: redis.Redis) -> tuple[str | None, str]:
    """Why messages may be missing from the broker (None: none are), and the mark to leave."""
    run_id = client.info("server")["run_id"]
    seconds, microseconds = client.time()
    now = seconds + microseconds / 1_000_000
    mark = json.dumps({"run_id": run_id, "at": now})
    raw = client.get(BROKER_MARK_KEY.format(connection.settings_dict["NAME"]))
    if raw is None:
        return "the broker holds no mark: it lost its data, or nobody looked before", mark
    seen = json.loads(raw)
    if seen.get("run_id") != run_id:
        return "the broker restarted", mark
    quiet = now - float(seen.get("at", 0))
    if quiet > _quiet_seconds():
        return f"nobody looked at the broker for {quiet:.0f} s", mark
    return None, mark


def resend_if_broker_lost() -> dict[str, list[int]]:
    """Send again every stored batch and queued run when the broker may have lost their
    messages (see above); returns their ids."""
    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    client = _broker_client()
    if client is None:
        return resent
    try:
        reason, mark = broker_loss(client)
    except redis.RedisError:
        # Away: its mark ages meanwhile, so the first look once it is back sends again.
        logger.debug("could not read the broker's mark", exc_info=True)
        return resent
    if reason is not None:
        resent = resend_waiting_work()
        if resent["batches"] or resent["runs"]:
            logger.warning("%s; sent again the tasks of waiting work: %s", reason, resent)
        else:
            logger.info("%s; no work waits for a message", reason)
    key = BROKER_MARK_KEY.format(connection.settings_dict["NAME"])
    transaction.on_commit(partial(client.set, key, mark), robust=True)
    return resent


def resend_waiting_work() -> dict[str, list[int]]:
    """Send again, once this transaction commits, the task of every batch stored and every
    run queued; returns their ids."""
    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    stored = LandingBatch.objects.filter(status=BatchStatus.STORED).order_by("pk")
    for pk, created_at in stored.values_list("pk", "created_at"):
        dispatch.queue_load(pk, via="resent", task_id=_resend_task_id("batch", pk, created_at))
        resent["batches"].append(pk)
    queued = Run.objects.filter(status=RunStatus.QUEUED, kind__in=dispatch.QUEUED_KINDS)
    for run in queued.order_by("pk"):
        dispatch.send_run_task_on_commit(
            run, task_id=_resend_task_id("run", run.pk, run.created_at)
        )
        resent["runs"].append(run.pk)
    return resent
