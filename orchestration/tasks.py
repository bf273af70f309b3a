from celery import shared_task

from orchestration import alerts, recovery


@shared_task
def tick() -> list[int]:
    """Beat calls this every minute; the catalog's schedules decide what runs."""
    return [run.pk for run in recovery.tick()]


@shared_task
def evaluate_alerts() -> dict[str, int]:
    """Beat calls this every minute: alert rules evaluated, due notifications delivered."""
    result = alerts.evaluate_alerts()
    return vars(result)
