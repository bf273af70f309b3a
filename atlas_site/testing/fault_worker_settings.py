"""Settings of the fault tests' workers: the test workers' settings, plus tasks that crash."""

from atlas_site.testing.worker_settings import *  # noqa: F403

CELERY_IMPORTS = ["atlas_site.testing.fault_tasks"]
