from celery import shared_task

from governance.archive import services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ensure_partitions() -> list[dict]:
    return [vars(report) for report in services.ensure_partitions()]
