from celery import shared_task
from django.db import InterfaceError, OperationalError

from explore import services


@shared_task(
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def load_batch(batch_id: int, via: str = "upload") -> str | None:
    """Load a stored batch into raw records. Safe to deliver twice (see services.load_batch)."""
    run = services.load_batch(batch_id=batch_id, triggered_by=f"celery ({via})")
    return run.status if run is not None else None
