"""When a run ends, queue the refresh of the dashboards' summaries (after commit)."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from dashboards.tasks import refresh_dashboards
from governance.pipeline.models import Run
from governance.pipeline.services import ENDED
from orchestration.dispatch import promotion_task_options


@receiver(post_save, sender=Run, dispatch_uid="dashboards.run_ended")
def run_ended(sender, instance: Run, **kwargs) -> None:
    if instance.status not in ENDED or instance.dataset_id is None:
        return

    # The summary catches up on every ended run not summarised yet, so a lost message
    # is made good by the next run's end (or `manage.py refresh_dashboards`).
    options = promotion_task_options()
    # robust: a broker hiccup here must not fail the commit of the run itself.
    transaction.on_commit(lambda: refresh_dashboards.apply_async(**options), robust=True)
