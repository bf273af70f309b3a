import os

from celery import Celery

from atlas_site.outages import DATABASE_OUTAGE_ERRORS

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

    return {
        "autoretry_for": DATABASE_OUTAGE_ERRORS,
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "max_retries": 60,
    }


# Every task's class: a message that keeps crashing its worker ends as a dead letter
# (orchestration.dead_letters). Named, not imported: the class is built when the app's
# tasks are finalised, once Django's apps are ready.
app = Celery("atlas", task_cls="orchestration.dead_letters:AtlasTask")
# Every CELERY_* Django setting configures the app (see settings/base.py).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
