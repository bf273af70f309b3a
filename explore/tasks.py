from celery import shared_task

from atlas_site.celery import database_outage_retry
from explore import services


@shared_task(**database_outage_retry())
def load_batch(batch_id: int, via: str = "upload") -> str | None:
    """Load a stored batch into raw records. Safe to deliver twice (see services.load_batch)."""
    run = services.load_batch(batch_id=batch_id, triggered_by=f"celery ({via})")
    return run.status if run is not None else None
