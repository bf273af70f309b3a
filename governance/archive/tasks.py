"""Partition-DDL tasks: thin, they call one service. With separate database roles they
run on the maintenance worker (ATLAS_MAINTENANCE_QUEUE), connected as the owner role."""

from celery import shared_task

from governance.archive import services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ensure_partitions() -> list[dict]:
    return [vars(report) for report in services.ensure_partitions()]


@shared_task
def schedule_retention() -> int:
    """Beat: open an archive run for the retention schedule and queue it."""
    return services.request_retention(triggered_by=services.SCHEDULE_ACTOR).pk


@shared_task
def apply_retention(run_id: int) -> str:
    from governance.pipeline.models import Run

    run = Run.objects.filter(pk=run_id).first()
    if run is None:  # deleted before the task ran
        return "no such run"
    return services.apply_retention(run=run).status


@shared_task
def restore_archived(manifest_id: int, user_id: int | None) -> str:
    return services.restore_in_background(manifest_id=manifest_id, user_id=user_id)
