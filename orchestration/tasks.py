from celery import shared_task

from orchestration import recovery


@shared_task
def tick() -> list[int]:
    """Beat calls this every minute; the catalog's schedules decide what runs."""
    return [run.pk for run in recovery.tick()]
