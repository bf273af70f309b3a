from celery import shared_task

from atlas_site.celery import database_outage_retry
from governance.pipeline.models import Run
from navigate import reporting, services
from navigate.reporting import ReportingBuildError


@shared_task(**database_outage_retry())
def promote_to_navigate(run_id: int) -> str:
    run = Run.objects.select_related("dataset").get(pk=run_id)
    run = services.promote_to_navigate(dataset=run.dataset, run=run, triggered_by=run.triggered_by)
    return run.status


@shared_task(autoretry_for=(ReportingBuildError,), retry_backoff=True, max_retries=8)
def build_reporting_views() -> int:
    """Rebuild the reporting views; sent to the maintenance worker (the owner role) when
    the role that changed a contract may not (orchestration.dispatch)."""
    return len(reporting.build_reporting_views().views)
