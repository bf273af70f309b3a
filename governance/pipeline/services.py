"""Writes of the pipeline area: runs and their lifecycle, promotion locks, the tick."""

import logging
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from atlas_site import advisory_locks, ownership
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import Dataset, Layer, Run, RunKind, RunStatus, Watermark
from governance.pipeline.selectors import SCHEDULE_TRIGGER, due_datasets

logger = logging.getLogger(__name__)


def create_run(
    *, dataset: Dataset, kind: str, triggered_by: str, actor=None, detail: dict | None = None
) -> Run:
    return Run.objects.create(
        dataset=dataset,
        kind=kind,
        status=RunStatus.QUEUED,
        triggered_by=triggered_by[:100],
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
        detail=detail or {},
    )


# pg_advisory_lock(namespace, dataset id): one promotion per dataset and layer.
LOCK_NAMESPACE = {
    Layer.CHART: advisory_locks.PROMOTE_CHART,
    Layer.NAVIGATE: advisory_locks.PROMOTE_NAVIGATE,
}


@contextmanager
def promotion_lock(dataset: Dataset, layer: str):
    """Hold a session advisory lock for this dataset's promotion into `layer`.

    Yields False when another worker holds it; a crash never leaves a dataset locked.
    """
    with advisory_locks.try_session_lock(LOCK_NAMESPACE[layer], dataset.pk) as acquired:
        yield acquired


ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)


@contextmanager
def run_lock(run: Run):
    """Hold a session advisory lock on one run; False when another delivery of its task has it.

    A task may be delivered twice: the delivery that holds this lock is the only one
    that may start, skip or finish the run. While it holds it, its process beats for it
    (atlas_site.ownership), so that a watchdog can tell when its owner is gone.
    """
    with ownership.owned(advisory_locks.RUN, run.pk) as acquired:
        yield acquired


def skip_run(run: Run, reason: str) -> Run:
    """End a run (its run_lock held) because another run holds the dataset's lock."""
    run.status = RunStatus.SKIPPED
    run.error = reason
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run


def fail_interrupted_runs(*, dataset: Dataset, kind: str, keep: Run) -> None:
    """Runs left 'running' by a worker that died; the caller holds the lock, so none is alive."""
    Run.objects.filter(dataset=dataset, kind=kind, status=RunStatus.RUNNING).exclude(
        pk=keep.pk
    ).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: its worker stopped before the run finished; a later run resumed "
        "from the last committed chunk",
    )


@contextmanager
def promotion_of(run: Run, *, dataset: Dataset, layer: str):
    """Yield True when this delivery of the run's task is the one to do its work.

    Then the run is 'running', this delivery holds the run's lock and the dataset's
    promotion lock for `layer`, and runs a dead worker left 'running' are failed.
    False: the run already ended, another delivery of its task owns it, or another
    run holds the dataset (this run is then skipped).

    Once a holder lets the dataset go (having finished normally), the promotions that
    were skipped meanwhile are taken up (`take_up_skipped_requests`): the holder may
    have read its input before theirs committed.
    """
    if run.status in ENDED:
        yield False
        return
    with run_lock(run) as mine:
        run.refresh_from_db()
        if not mine or run.status in ENDED:
            yield False
            return
        with promotion_lock(dataset, layer) as acquired:
            if not acquired:
                skip_run(run, f"another promotion of {dataset.slug} to {layer} is running")
                yield False
                return
            fail_interrupted_runs(dataset=dataset, kind=run.kind, keep=run)
            Run.objects.filter(pk=run.pk).update(
                status=RunStatus.RUNNING, started_at=run.started_at or timezone.now()
            )
            run.refresh_from_db()
            yield True
        # The lock is released first: a request that comes now runs itself, and one
        # skipped while it was held has committed its skip before this looks.
        take_up_skipped_requests(dataset=dataset, layer=layer)


# The kind of run that promotes into each layer; a re-processing run (chart.reprocess)
# is a person's request, answered on their page, and is not taken up again.
PROMOTION_KIND = {Layer.CHART: RunKind.PROMOTE_CHART, Layer.NAVIGATE: RunKind.PROMOTE_NAVIGATE}
REPROCESS_TRIGGER = "reprocess"


def take_up_skipped_requests(*, dataset: Dataset, layer: str) -> Run | None:
    """Coalesce the promotions of `dataset` into `layer` skipped as busy into one new run.

    A request that found the dataset busy was recorded as skipped, and the promotion
    holding it may have read its input before that input committed. So whoever lets the
    lock go queues one follow-up for all of them (each skipped run names it in
    `detail["coalesced_into"]`); it finds their input, or nothing, and ends. Returns the
    follow-up run, or None when nothing was skipped.
    """
    with transaction.atomic():
        skipped = list(
            Run.objects.select_for_update(skip_locked=True)
            .filter(dataset=dataset, kind=PROMOTION_KIND[layer], status=RunStatus.SKIPPED)
            .exclude(detail__has_key="coalesced_into")
            .exclude(triggered_by=REPROCESS_TRIGGER)
            .order_by("pk")
        )
        if not skipped:
            return None
        triggered_by = f"skipped runs {', '.join(str(run.pk) for run in skipped)}"[:100]
        if layer == Layer.CHART:
            onwards = any(
                (run.detail or {}).get("to_layer", Layer.NAVIGATE) == Layer.NAVIGATE
                for run in skipped
            )
            follow_up = request_promotion(
                dataset=dataset,
                triggered_by=triggered_by,
                to_layer=Layer.NAVIGATE if onwards else Layer.CHART,
            )
        else:
            follow_up = request_navigate_promotion(dataset=dataset, triggered_by=triggered_by)
        for run in skipped:
            run.detail = {**(run.detail or {}), "coalesced_into": follow_up.pk}
            run.save(update_fields=["detail"])
    logger.info(
        "promotion of %s to %s: %d skipped request(s) taken up by run %s",
        dataset.slug,
        layer,
        len(skipped),
        follow_up.pk,
    )
    return follow_up


def finish_run(
    run: Run,
    status: str,
    *,
    actor=None,
    error: str = "",
    detail: dict | None = None,
    kept: bool = True,
) -> Run:
    """End a run and audit it. `kept=False`: the run's work was rolled back whole."""
    run.refresh_from_db()
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    if detail:
        run.detail = {**run.detail, **detail}
    if not kept:
        run.rows_in = run.rows_promoted = run.rows_quarantined = 0
    run.save()
    record_audit(
        actor=actor if actor is not None else "celery",
        action=AuditAction.RUN,
        instance=run,
        after={
            "status": run.status,
            "rows_in": run.rows_in,
            "rows_promoted": run.rows_promoted,
            "rows_quarantined": run.rows_quarantined,
        },
        detail=error,
    )
    return run


def promotion_task_options() -> dict:
    """Options of promotion tasks: the ATLAS_PROMOTION_QUEUE setting, when one is set."""
    queue = getattr(settings, "ATLAS_PROMOTION_QUEUE", None)
    return {"queue": queue} if queue else {}


def request_promotion(
    *, dataset: Dataset, triggered_by: str, actor=None, to_layer: str = Layer.NAVIGATE
) -> Run:
    """Queue a promotion of the dataset to chart (and on to navigate); returns its run.

    The task is sent only once this transaction commits, so the worker finds the run.
    """
    if to_layer not in (Layer.CHART, Layer.NAVIGATE):
        raise ValueError(f"a promotion goes to chart or navigate, not {to_layer!r}")
    from chart.tasks import promote_to_chart

    run = create_run(
        dataset=dataset,
        kind=RunKind.PROMOTE_CHART,
        triggered_by=triggered_by,
        actor=actor,
        detail={"to_layer": to_layer},  # for resend_stalled_work
    )
    if actor is not None:
        record_audit(
            actor=actor,
            action=AuditAction.RUN,
            instance=run,
            detail=f"requested promotion of {dataset.slug} to {to_layer}",
        )
    promote_to_chart.apply_async_on_commit(
        (run.pk, to_layer == Layer.NAVIGATE), **promotion_task_options()
    )
    return run


def request_navigate_promotion(*, dataset: Dataset, triggered_by: str, actor=None) -> Run:
    from navigate.tasks import promote_to_navigate

    run = create_run(
        dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, triggered_by=triggered_by, actor=actor
    )
    promote_to_navigate.apply_async_on_commit((run.pk,), **promotion_task_options())
    return run


# --- Re-protecting chart values --------------------------------------------------------

# Sent by name: governance decides that values are re-protected, chart does it, and a
# layer below never imports the one above (DESIGN.md, Direction of imports).
REPROTECT_TASK = "chart.tasks.reprotect_chart"


def send_reprotect_on_commit(run: Run, *, countdown: float | None = None) -> None:
    """Send the run's re-protect task once this transaction commits.

    A broker outage does not undo the decision that queued it (robust): the run stays
    queued and `resend_stalled_work` sends it again.
    """
    from celery import current_app

    options = promotion_task_options()
    if countdown:
        options["countdown"] = countdown
    run_pk = run.pk
    transaction.on_commit(
        lambda: current_app.send_task(REPROTECT_TASK, args=[run_pk], **options), robust=True
    )


def request_reprotect(
    *, dataset: Dataset, triggered_by: str, actor=None, reason: str = "", countdown=None
) -> Run | None:
    """Queue re-protection of the dataset's chart values; None when chart holds none yet.

    A re-protect run of the dataset that is queued and not started yet is reused: it
    reads the classifications when it starts, so it covers this change too. Its row is
    locked until this transaction commits, so a worker cannot start it in between.
    """
    if not Watermark.objects.filter(dataset=dataset, layer=Layer.CHART, position__gt=0).exists():
        return None
    with transaction.atomic():
        queued = (
            Run.objects.select_for_update()
            .filter(dataset=dataset, kind=RunKind.REPROTECT, status=RunStatus.QUEUED)
            .order_by("pk")
            .first()
        )
        if queued is not None:
            reasons = [*queued.detail.get("reasons", []), reason][-20:]
            queued.detail = {**queued.detail, "reasons": reasons}
            queued.save(update_fields=["detail"])
            return queued
        run = create_run(
            dataset=dataset,
            kind=RunKind.REPROTECT,
            triggered_by=triggered_by,
            actor=actor,
            detail={"reasons": [reason]},
        )
        record_audit(
            actor=actor if actor is not None else triggered_by,
            action=AuditAction.RUN,
            instance=run,
            detail=f"queued re-protection of the chart values of {dataset.slug}"
            + (f" ({reason})" if reason else ""),
        )
        send_reprotect_on_commit(run, countdown=countdown)
    return run


@transaction.atomic
def tick(*, now: datetime | None = None) -> list[Run]:
    """Queue a promotion for every dataset whose schedule is due; resend stalled work."""
    now = now or timezone.now()
    resend_stalled_work(now=now)
    return [
        request_promotion(dataset=dataset, triggered_by=SCHEDULE_TRIGGER)
        for dataset in due_datasets(now=now)
    ]


# --- Work nobody is doing -------------------------------------------------------------

# Work waiting this long has its task sent again (at most once per period). A task can
# be lost on the way: Redis was down when it was to be sent (the batch was stored, the
# run created: the request did not fail for it), or its retries ran out while the
# database was down.
STALLED_AFTER = timedelta(minutes=10)
RESENT_KEY = "atlas:resent:{}:{}"
# The runs whose task is sent again when they stall (a re-processing run is a person's
# request, answered on their page; an ingest run goes with its batch).
RESENT_KINDS = (RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE, RunKind.REPROTECT)
# Sent by name, as the re-protect task is (a layer below never imports the one above).
LOAD_TASK = "explore.tasks.load_batch"
PROMOTE_CHART_TASK = "chart.tasks.promote_to_chart"
PROMOTE_NAVIGATE_TASK = "navigate.tasks.promote_to_navigate"


def _first_resend(kind: str, pk: int) -> bool:
    try:
        return cache.add(RESENT_KEY.format(kind, pk), 1, timeout=STALLED_AFTER.total_seconds())
    except Exception:  # no cache: resend; a duplicate delivery does nothing twice
        return True


def resend_stalled_work(*, now: datetime) -> dict[str, list[int]]:
    """Send again the tasks of loads, promotions and re-protections nobody is doing.

    Returns their ids.

    Every task is safe to deliver twice (a load claims its batch, a promotion its run,
    under advisory locks), so sending one again costs at most a delivery that finds
    the work done. Stalled: a batch stored or a run queued STALLED_AFTER ago and still
    waiting (at most once per period each), or a batch 'loading' / a run 'running'
    whose owner is gone (`resend_ownerless_work`, which every worker's watchdog also
    runs every few seconds).
    """
    from chart.tasks import promote_to_chart
    from explore.models import BatchStatus, LandingBatch
    from explore.services import queue_load
    from navigate.tasks import promote_to_navigate

    before = now - STALLED_AFTER
    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    batches = LandingBatch.objects.filter(status=BatchStatus.STORED, created_at__lt=before)
    for pk in batches.order_by("pk").values_list("pk", flat=True):
        if _first_resend("batch", pk):
            queue_load(pk, via="resent")
            resent["batches"].append(pk)
    runs = Run.objects.filter(
        status=RunStatus.QUEUED, created_at__lt=before, kind__in=RESENT_KINDS
    ).order_by("pk")
    for run in runs:
        if not _first_resend("run", run.pk):
            continue
        if run.kind == RunKind.PROMOTE_CHART:
            onwards = (run.detail or {}).get("to_layer", Layer.NAVIGATE) == Layer.NAVIGATE
            promote_to_chart.apply_async_on_commit((run.pk, onwards), **promotion_task_options())
        elif run.kind == RunKind.REPROTECT:
            send_reprotect_on_commit(run)
        else:
            promote_to_navigate.apply_async_on_commit((run.pk,), **promotion_task_options())
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
    dead letter (governance.pipeline.dead_letters) instead of being sent for ever.
    """
    from explore.models import BatchStatus, LandingBatch

    resent: dict[str, list[int]] = {"batches": [], "runs": []}
    loading = dict(
        LandingBatch.objects.filter(status=BatchStatus.LOADING).values_list("pk", "created_at")
    )
    for pk in ownership.ownerless(advisory_locks.LOAD_BATCH, sorted(loading)):
        if ownership.claim_resend(advisory_locks.LOAD_BATCH, pk):
            queue = getattr(settings, "ATLAS_INGEST_QUEUE", None)
            _send_on_commit(
                LOAD_TASK,
                [pk, "resent"],
                task_id=_resend_task_id("batch", pk, loading[pk]),
                **({"queue": queue} if queue else {}),
            )
            resent["batches"].append(pk)
    running = {
        run.pk: run for run in Run.objects.filter(status=RunStatus.RUNNING, kind__in=RESENT_KINDS)
    }
    for pk in ownership.ownerless(advisory_locks.RUN, sorted(running)):
        if ownership.claim_resend(advisory_locks.RUN, pk):
            _resend_run(running[pk])
            resent["runs"].append(pk)
    if resent["batches"] or resent["runs"]:
        logger.warning("sent again the tasks of work whose owner is gone: %s", resent)
    return resent


def _resend_task_id(kind: str, pk: int, created_at: datetime) -> str:
    database = connection.settings_dict["NAME"]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"atlas:{database}:{kind}:{pk}:{created_at}"))


def _resend_run(run: Run) -> None:
    task_id = _resend_task_id("run", run.pk, run.created_at)
    options = promotion_task_options()
    if run.kind == RunKind.PROMOTE_CHART:
        onwards = (run.detail or {}).get("to_layer", Layer.NAVIGATE) == Layer.NAVIGATE
        _send_on_commit(PROMOTE_CHART_TASK, [run.pk, onwards], task_id=task_id, **options)
    elif run.kind == RunKind.REPROTECT:
        _send_on_commit(REPROTECT_TASK, [run.pk], task_id=task_id, **options)
    else:
        _send_on_commit(PROMOTE_NAVIGATE_TASK, [run.pk], task_id=task_id, **options)


def _send_on_commit(name: str, args: list, **options) -> None:
    """Send a task by name once this transaction commits (a broker outage is logged)."""
    from celery import current_app

    transaction.on_commit(lambda: current_app.send_task(name, args=args, **options), robust=True)
