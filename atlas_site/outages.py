"""What counts as the database going away: one list, for the task retries and the services.

Django wraps the driver's errors in its own classes (django.db.OperationalError ...) for
what goes through its cursors. A COPY runs on psycopg's own cursor (`cursor.copy()`:
loads in explore, chart's chunk writes), so a server restart, failover or network reset
in the middle of one raises psycopg's classes (psycopg.OperationalError, among them
psycopg.errors.AdminShutdown) past Django. Both are the same outage: the work is left
claimable (a load's one transaction rolled back, a promotion's committed chunks kept),
and its task retries once the database is back (atlas_site.celery.database_outage_retry).
"""

import psycopg
from django.db import InterfaceError, OperationalError

DATABASE_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
