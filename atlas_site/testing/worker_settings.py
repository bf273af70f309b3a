"""Settings of Celery workers started by the tests: the test settings, plus prompt recovery.

kombu's Redis transport hands an unacknowledged message to another worker once it is
older than the visibility timeout, but it looks for such messages only every
`unacked_restore_interval` x `unacked_restore_throttle` seconds (100 s by default).
Tests that kill a worker set a short visibility timeout and need the sweep every
second, so a restarted worker finds the orphaned message promptly.
"""

from atlas_site.settings.test import *  # noqa: F403
from atlas_site.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
