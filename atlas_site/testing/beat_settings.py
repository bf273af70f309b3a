"""Settings of `celery beat` started by tests: the pipeline's tick alone, to the test's queue.

The queue comes from ATLAS_TEST_BEAT_QUEUE (atlas_site.testing.celery_worker.spawn_beat),
so that only the test's own workers run the ticks.
"""

import os

from atlas_site.settings.test import *  # noqa: F403
from atlas_site.settings.test import CELERY_BEAT_SCHEDULE

CELERY_BEAT_SCHEDULE = {
    "pipeline-tick": {
        **CELERY_BEAT_SCHEDULE["pipeline-tick"],
        # A test may tick faster than the minute (ATLAS_TEST_BEAT_SECONDS).
        "schedule": float(os.environ.get("ATLAS_TEST_BEAT_SECONDS", "60")),
    }
}
CELERY_TASK_ROUTES = {
    "orchestration.tasks.tick": {"queue": os.environ["ATLAS_TEST_BEAT_QUEUE"]},
}
