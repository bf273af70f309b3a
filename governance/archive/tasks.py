"""Partition-DDL tasks: thin, they call one service. With separate database roles they
run on the maintenance worker (ATLAS_MAINTENANCE_QUEUE), connected as the owner role.

The tasks import the services, never the reverse: what to queue after a service is
decided here (`request_retention`)."""

from celery import shared_task
from django.conf import settings

from governance.archive.services import restore, retention, upkeep
from governance.pipeline.models import Run


def maintenance_task_options() -> dict:
    """Options of partition-DDL tasks: the ATLAS_MAINTENANCE_QUEUE setting, when set."""
    queue = settings.ATLAS_MAINTENANCE_QUEUE
    return {"queue": queue} if queue else {}


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ensure_partitions() -> list[dict]:
    return [vars(report) for report in upkeep.ensure_partitions()]


@shared_task
def schedule_retention() -> int:
    """Beat: open an archive run for the retention schedule and queue it."""
    return request_retention(triggered_by=retention.SCHEDULE_ACTOR).pk


@shared_task
def apply_retention(run_id: int) -> str:
    run = Run.objects.filter(pk=run_id).first()
    if run is None:  # deleted before the task ran
        return "no such run"
    return retention.apply_retention(run=run).status


@shared_task
def restore_archived(manifest_id: int, user_id: int | None) -> str:
    return restore.restore_in_background(manifest_id=manifest_id, user_id=user_id)


def request_retention(*, triggered_by: str, actor=None) -> Run:
    """Open an archive run and queue it (after commit); returns the run."""
    run = retention.open_retention_run(triggered_by=triggered_by, actor=actor)
    apply_retention.apply_async_on_commit((run.pk,), **maintenance_task_options())
    return run
