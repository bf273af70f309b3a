import logging

from celery import shared_task

from orchestration import alerts, openlineage, recovery

logger = logging.getLogger(__name__)


@shared_task
def tick() -> list[int]:
    """Beat calls this every minute; the catalog's schedules decide what runs."""
    return [run.pk for run in recovery.tick()]


@shared_task
def evaluate_alerts() -> dict[str, int]:
    """Beat calls this every minute: alert rules evaluated, due notifications delivered."""
    result = alerts.evaluate_alerts()
    return vars(result)


@shared_task(bind=True, max_retries=openlineage.MAX_ATTEMPTS - 1, acks_late=False)
def emit_openlineage(self, run_id: int, transport: str, sent: int = 0) -> int:
    """Send an ended run's OpenLineage events; a failed send is retried with backoff.

    Never raised into the pipeline (the run has committed): after the last attempt the
    events are given up with a warning. Not acknowledged late: a worker lost mid-send
    costs these events, not a redelivery loop.
    """
    try:
        return openlineage.emit(run_id=run_id, transport=transport, sent=sent)
    except openlineage.DeliveryError as failure:
        attempts = self.request.retries + 1
        if attempts >= openlineage.MAX_ATTEMPTS:
            logger.warning(
                "OpenLineage events of run %s not sent by %s after %s attempts (%s); given up",
                run_id,
                transport,
                attempts,
                failure.reason,
            )
            return failure.sent
        logger.info(
            "OpenLineage events of run %s not sent by %s (%s); retrying",
            run_id,
            transport,
            failure.reason,
        )
        raise self.retry(
            kwargs={"run_id": run_id, "transport": transport, "sent": failure.sent},
            countdown=openlineage.backoff(attempts).total_seconds(),
        ) from None
