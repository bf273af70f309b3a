from celery import shared_task
from django.db import InterfaceError, OperationalError

from governance.pipeline.models import Run
from navigate import services


@shared_task(
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def promote_to_navigate(run_id: int) -> str:
    run = Run.objects.select_related("dataset").get(pk=run_id)
    run = services.promote_to_navigate(dataset=run.dataset, run=run, triggered_by=run.triggered_by)
    return run.status
