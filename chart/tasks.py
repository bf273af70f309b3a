from celery import shared_task
from django.conf import settings

from atlas_site.celery import database_outage_retry
from chart import reprotect, services
from governance.pipeline.models import Run, RunStatus

# While a promotion holds the dataset, a re-protect run waits this long between tries.
REPROTECT_WAIT_SECONDS = 60


@shared_task(**database_outage_retry())
def promote_to_chart(run_id: int, continue_to_navigate: bool = True) -> str:
    """Promote a queued run's records to chart.

    What runs next (navigate, when the run was asked to go that far) is the
    orchestration's to decide when the run ends; `continue_to_navigate` is ignored and
    kept for messages sent before that.
    """
    run = Run.objects.select_related("dataset").get(pk=run_id)
    run = services.promote_to_chart(
        dataset=run.dataset,
        run=run,
        triggered_by=run.triggered_by,
        chunk_size=settings.ATLAS_PROMOTION_CHUNK_SIZE,
        chunk_bytes=settings.ATLAS_PROMOTION_CHUNK_BYTES,
    )
    return run.status


@shared_task(**database_outage_retry())
def help_promote_to_chart(run_id: int) -> int:
    """Share the chunks of a running promotion (chart.shared_promotion); sent by
    orchestration.dispatch when the run's owner asks for helpers."""
    run = Run.objects.select_related("dataset").get(pk=run_id)
    return services.help_promote_to_chart(
        run=run,
        chunk_size=settings.ATLAS_PROMOTION_CHUNK_SIZE,
        chunk_bytes=settings.ATLAS_PROMOTION_CHUNK_BYTES,
    )


@shared_task(bind=True, **database_outage_retry())
def reprotect_chart(self, run_id: int) -> str:
    """Sent for a queued re-protect run by orchestration.dispatch: see chart.reprotect."""
    run = Run.objects.select_related("dataset").get(pk=run_id)
    run = reprotect.reprotect_chart(dataset=run.dataset, run=run)
    if run.status == RunStatus.QUEUED:
        # A promotion holds the dataset: try again later (past the retries, the
        # pipeline's tick sends stalled runs again).
        raise self.retry(countdown=REPROTECT_WAIT_SECONDS)
    return run.status
