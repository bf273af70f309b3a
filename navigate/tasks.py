from celery import shared_task

from atlas_site.celery import database_outage_retry
from governance.pipeline.models import Run
from navigate import services


@shared_task(**database_outage_retry())
def promote_to_navigate(run_id: int) -> str:
    run = Run.objects.select_related("dataset").get(pk=run_id)
    run = services.promote_to_navigate(dataset=run.dataset, run=run, triggered_by=run.triggered_by)
    return run.status
