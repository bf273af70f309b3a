import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from celery.signals import worker_ready, worker_shutting_down

# A worker started without DJANGO_SETTINGS_MODULE is taken for a deployment: production
# settings (bin/run and the tests name theirs), never the development keys by default.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.production")


def database_outage_retry() -> dict:
    """Options of tasks that resume once the database is back: `@shared_task(**...)`.

    Their services leave the work claimable when the database goes away mid-way (a
    load's one transaction is rolled back; a promotion keeps its committed chunks), so
    retrying is safe. Up to about 45 minutes: 60 retries, at most 60 s apart (with
    jitter); past that, the pipeline's tick sends the stalled work again. Django's
    errors and psycopg's own (raised from a COPY) alike: atlas_site.outages.
    """
    from atlas_site.outages import DATABASE_OUTAGE_ERRORS

    return {
        "autoretry_for": DATABASE_OUTAGE_ERRORS,
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "max_retries": 60,
    }


class AtlasTask(DjangoTask):
    """Every Atlas task: a message that keeps crashing its worker ends as a dead letter.

    Deliveries are counted when they start and the count is cleared when they end, so
    only deliveries whose worker died under them add up (see
    governance.pipeline.dead_letters). Past ATLAS_MAX_DELIVERIES the task is not run:
    it is set aside and its message acknowledged, instead of being delivered forever.
    Based on Celery's DjangoTask (what Celery uses under Django when no class is given),
    for `delay_on_commit` and `apply_async_on_commit`.
    """

    def __call__(self, *args, **kwargs):
        request = self.request
        if request.called_directly or request.is_eager or not request.id:
            return super().__call__(*args, **kwargs)
        from governance.pipeline import dead_letters

        delivery = dead_letters.begin_delivery(task_id=request.id, hostname=request.hostname or "")
        if delivery is not None and delivery.number > dead_letters.max_deliveries():
            dead_letters.set_aside(
                task_name=self.name,
                task_id=request.id,
                run_function=self.run,
                args=args,
                kwargs=kwargs,
                queue=(request.delivery_info or {}).get("routing_key") or "",
                delivery=delivery,
            )
            dead_letters.end_delivery(task_id=request.id)
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            dead_letters.end_delivery(task_id=request.id)


app = Celery("atlas", task_cls=AtlasTask)
# Every CELERY_* Django setting configures the app (see settings/base.py).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _start_watchdog(sender=None, **kwargs) -> None:
    """Every worker looks for work whose owner died (governance.pipeline.watchdog)."""
    from governance.pipeline import watchdog

    watchdog.start(hostname=getattr(sender, "hostname", "") or "")


@worker_shutting_down.connect
def _stop_watchdog(**kwargs) -> None:
    from governance.pipeline import watchdog

    watchdog.stop()
