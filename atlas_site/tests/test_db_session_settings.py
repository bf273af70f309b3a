"""Every Atlas database session asks its backend to notice when its client is gone.

With `client_connection_check_interval` (PostgreSQL 14+, set through the connection's
options: ATLAS_DB_CLIENT_CHECK_INTERVAL), a backend checks its client's socket while a
statement runs. A worker killed while its statement waits on a lock would otherwise
leave its session (and the advisory locks it holds) until the lock is granted, however
long that is.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from atlas_site.testing.celery_worker import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_sessions_check_their_client_while_a_statement_runs():
    assert settings.ATLAS_DB_CLIENT_CHECK_INTERVAL == "5s"
    with connection.cursor() as cursor:
        cursor.execute("SHOW client_connection_check_interval")
        assert cursor.fetchone() == ("5s",)


CLIENT = textwrap.dedent(
    """
    import django

    django.setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(7303, 31337)")  # a run's lock, say
        print(connection.connection.info.backend_pid, flush=True)
        cursor.execute("SELECT pg_advisory_lock(7399, 1)")  # waits for the test's lock
    """
)


def test_a_killed_clients_session_ends_while_it_waits_on_a_lock():
    database = connection.settings_dict["NAME"]
    url = database_url(database)
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(7399, 1)")
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "atlas_site.settings.test",
                "DATABASE_URL": url,
                "ATLAS_DB_CLIENT_CHECK_INTERVAL": "1s",
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            backend = int(client.stdout.readline())
            deadline = time.monotonic() + 10
            while not holder.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                [backend],
            ).fetchone():
                assert time.monotonic() < deadline, "the client never waited on the lock"
                time.sleep(0.05)
            client.send_signal(signal.SIGKILL)
            client.wait()
            killed_at = time.monotonic()
            # The lock it waits for is still held: only the check can end the session.
            while holder.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]
            ).fetchone():
                assert time.monotonic() - killed_at < 10, "the backend outlived its client"
                time.sleep(0.05)
            assert not holder.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 31337"
            ).fetchone()
        finally:
            client.kill()
