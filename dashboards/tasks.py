from celery import shared_task
from django.db import InterfaceError, OperationalError

from dashboards import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=5)
def refresh_run_summaries() -> int:
    return services.refresh_run_summaries()
