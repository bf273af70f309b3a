"""Transactions that wait between their statements on purpose.

Every session is ended once idle in a transaction for ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT
(settings/base.py), so a forgotten transaction cannot hold its locks for ever. A few
transactions wait between statements for work done elsewhere: a promotion under a 'fail'
gate keeps every chunk in one transaction while its evaluation pool judges the next chunk,
and a chunk full of values that each take the PII scan's time box can take minutes. Such a
transaction raises its own bound, for itself alone (a local setting ends with it), to the
task's hard time limit: no task runs longer, so neither does its transaction, and an owner
that died meanwhile is found by its heartbeat (atlas_site.ownership), which ends its session.
"""

from django.conf import settings
from django.db import connection


def may_wait_between_statements() -> None:
    """Let the current transaction sit idle for up to CELERY_TASK_TIME_LIMIT seconds
    (with no time limit, for as long as it needs)."""
    limit = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 0) or 0)
    bound = f"{limit}s" if limit > 0 else "0"
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        (current,) = cursor.fetchone()
        if current == "0":
            return  # no bound to raise
        # Compared as intervals ("10min" against "3300s"); never lowered.
        cursor.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true) "
            "WHERE %s = 0 OR make_interval(secs => %s) > "
            "current_setting('idle_in_transaction_session_timeout')::interval",
            [bound, limit, limit],
        )
