"""Writes of the pipeline area: asking for promotions, the periodic tick."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import Dataset, Layer, Run, RunKind, RunStatus
from governance.pipeline.selectors import SCHEDULE_TRIGGER, due_datasets


def create_run(*, dataset: Dataset, kind: str, triggered_by: str, actor=None) -> Run:
    return Run.objects.create(
        dataset=dataset,
        kind=kind,
        status=RunStatus.QUEUED,
        triggered_by=triggered_by[:100],
        started_by=actor if getattr(actor, "is_authenticated", False) else None,
    )


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
        dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by=triggered_by, actor=actor
    )
    if actor is not None:
        record_audit(
            actor=actor,
            action=AuditAction.RUN,
            instance=run,
            detail=f"requested promotion of {dataset.slug} to {to_layer}",
        )
    promote_to_chart.delay_on_commit(run.pk, to_layer == Layer.NAVIGATE)
    return run


def request_navigate_promotion(*, dataset: Dataset, triggered_by: str, actor=None) -> Run:
    from navigate.tasks import promote_to_navigate

    run = create_run(
        dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, triggered_by=triggered_by, actor=actor
    )
    promote_to_navigate.delay_on_commit(run.pk)
    return run


@transaction.atomic
def tick(*, now: datetime | None = None) -> list[Run]:
    """Queue a promotion for every dataset whose schedule is due."""
    now = now or timezone.now()
    return [
        request_promotion(dataset=dataset, triggered_by=SCHEDULE_TRIGGER)
        for dataset in due_datasets(now=now)
    ]
