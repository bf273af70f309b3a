"""Writes of the pipeline area: runs and their lifecycle, promotion locks, requests.

A request creates a queued run and says so (`signals.run_requested`); sending its task,
and deciding what runs next, is the orchestration app's (above every layer)."""

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from atlas_site import advisory_locks, ownership
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline import signals
from governance.pipeline.models import Dataset, Layer, Run, RunKind, RunStatus, Watermark

logger = logging.getLogger(__name__)


def create_run(
    *,
    dataset: Dataset | None,
    kind: str,
    triggered_by: str,
    actor=None,
    detail: dict | None = None,
) -> Run:
    """A queued run of `kind`; `dataset` is None for work across datasets (retention)."""
    return Run.objects.create(
        dataset=dataset,
        kind=kind,
        status=RunStatus.QUEUED,
        triggered_by=triggered_by[:100],
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
        detail=detail or {},
    )


# pg_advisory_lock(namespace, dataset id): one promotion per dataset and layer.
LOCK_NAMESPACE: dict[str, int] = {
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

    A request skipped as busy is coalesced, never dropped: see `_take_up_after`.
    """
    if run.status in ENDED:
        yield False
        return
    with run_lock(run) as mine:
        run.refresh_from_db()
        if not mine or run.status in ENDED:
            yield False
            return
        acquired: bool | None = None
        try:
            with promotion_lock(dataset, layer) as acquired:
                if acquired:
                    fail_interrupted_runs(dataset=dataset, kind=run.kind, keep=run)
                    Run.objects.filter(pk=run.pk).update(
                        status=RunStatus.RUNNING, started_at=run.started_at or timezone.now()
                    )
                    run.refresh_from_db()
                    yield True
                else:
                    skip_run(run, f"another promotion of {dataset.slug} to {layer} is running")
        finally:
            if acquired is not None:
                _take_up_after(dataset=dataset, layer=layer, held=bool(acquired))
        if not acquired:
            yield False


def _take_up_after(*, dataset: Dataset, layer: str, held: bool) -> None:
    """Make sure the requests skipped as busy are taken up, once the lock is let go.

    The promotion holding the dataset may have read its input before a skipped request's
    input committed, so someone must queue a follow-up after the last skip commits. Two
    rules make that someone exist, whatever the timing:

    - the holder, however it ends (finished, failed, raised), takes up after letting the
      lock go every skip committed by then;
    - a request skipped, once its skip is committed, tries the lock again: still held,
      the holder has not let go yet, so its take-up (later) sees this skip; free, the
      holder let go, perhaps taking up before this skip committed, so this request
      takes up itself.

    Run outside any transaction (the tasks are), "committed" is as soon as `skip_run`
    returns. A take-up that cannot run (the database is away) is logged and left to the
    watchdog's sweep (`take_up_forgotten_skips`), never raised over the run's own outcome.
    """
    try:
        if held:
            take_up_skipped_requests(dataset=dataset, layer=layer)
        else:
            take_up_skipped_requests_if_free(dataset=dataset, layer=layer)
    except Exception:
        logger.warning(
            "promotion of %s to %s: could not take up skipped requests now; the watchdog will",
            dataset.slug,
            layer,
            exc_info=True,
        )


def take_up_skipped_requests_if_free(*, dataset: Dataset, layer: str) -> Run | None:
    """Take up the skipped requests unless a promotion holds the dataset (it takes them up
    as it lets go); returns the follow-up run, if one was queued."""
    with promotion_lock(dataset, layer) as free:
        pass
    if not free:
        return None
    return take_up_skipped_requests(dataset=dataset, layer=layer)


# Skipped requests the watchdog's sweep looks at: recent ones (a take-up that failed is
# found within seconds), read along the primary key rather than every skip ever made.
FORGOTTEN_SKIPS_WINDOW = timedelta(days=1)


def take_up_forgotten_skips(*, now: datetime | None = None) -> list[Run]:
    """The sweep behind `_take_up_after`: skipped promotions nobody took up (their holder
    was killed before letting go, a take-up failed) of datasets no promotion holds.

    Returns the follow-up runs queued.
    """
    since = (now or timezone.now()) - FORGOTTEN_SKIPS_WINDOW
    # Ids grow with time: the newest run older than the window bounds the scan.
    floor = (
        Run.objects.filter(created_at__lt=since).order_by("-pk").values_list("pk", flat=True)
    ).first()
    skipped = (
        Run.objects.filter(
            pk__gt=floor or 0,
            status=RunStatus.SKIPPED,
            kind__in=PROMOTION_KIND.values(),
            dataset__isnull=False,
        )
        .exclude(detail__has_key="coalesced_into")
        .exclude(triggered_by=REPROCESS_TRIGGER)
        .values_list("dataset_id", "kind")
        .distinct()
    )
    layer_of = {kind: layer for layer, kind in PROMOTION_KIND.items()}
    follow_ups = []
    for dataset_id, kind in sorted(skipped):
        dataset = Dataset.objects.get(pk=dataset_id)
        follow_up = take_up_skipped_requests_if_free(dataset=dataset, layer=layer_of[kind])
        if follow_up is not None:
            follow_ups.append(follow_up)
    return follow_ups


# The kind of run that promotes into each layer; a re-processing run (chart.reprocess)
# is a person's request, answered on their page, and is not taken up again.
PROMOTION_KIND: dict[str, str] = {
    Layer.CHART: RunKind.PROMOTE_CHART,
    Layer.NAVIGATE: RunKind.PROMOTE_NAVIGATE,
}
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
    """End a run and audit it. `kept=False`: the run's work was rolled back whole.

    What comes next (`signals.run_finished`: the orchestration requests the next step)
    commits with the run's end, or neither does: a worker that dies in between leaves
    no ended run without its follow-up.
    """
    with transaction.atomic():
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
        signals.run_finished.send(sender=Run, run=run)
    return run


def request_promotion(
    *, dataset: Dataset, triggered_by: str, actor=None, to_layer: str = Layer.NAVIGATE
) -> Run:
    """Queue a promotion of the dataset to chart (and on to navigate); returns its run.

    The task is sent only once this transaction commits, so the worker finds the run.
    """
    if to_layer not in (Layer.CHART, Layer.NAVIGATE):
        raise ValueError(f"a promotion goes to chart or navigate, not {to_layer!r}")
    run = create_run(
        dataset=dataset,
        kind=RunKind.PROMOTE_CHART,
        triggered_by=triggered_by,
        actor=actor,
        detail={"to_layer": to_layer},  # where the promotion stops
    )
    if actor is not None:
        record_audit(
            actor=actor,
            action=AuditAction.RUN,
            instance=run,
            detail=f"requested promotion of {dataset.slug} to {to_layer}",
        )
    signals.run_requested.send(sender=Run, run=run)
    return run


def request_navigate_promotion(*, dataset: Dataset, triggered_by: str, actor=None) -> Run:
    """Queue a promotion of the dataset's chart records to navigate; returns its run."""
    run = create_run(
        dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, triggered_by=triggered_by, actor=actor
    )
    signals.run_requested.send(sender=Run, run=run)
    return run


# --- Re-protecting chart values --------------------------------------------------------


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
        signals.run_requested.send(sender=Run, run=run, countdown=countdown)
    return run
