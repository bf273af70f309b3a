from celery import shared_task
from django.db import InterfaceError, OperationalError

from dashboards import services


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=5)
def refresh_dashboards() -> int:
    return services.refresh_dashboards()
