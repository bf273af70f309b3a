"""Every Atlas database session asks its backend to notice when its client is gone.

With `client_connection_check_interval` (PostgreSQL 14+, set through the connection's
options: ATLAS_DB_CLIENT_CHECK_INTERVAL), a backend checks its client's socket while a
statement runs. A worker killed while its statement waits on a lock would otherwise
leave its session (and the advisory locks it holds) until the lock is granted, however
long that is. And `idle_in_transaction_session_timeout` (ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT)
ends a session forgotten in a transaction, whatever role it connects as; a promotion that
waits on its evaluation pool inside one transaction (a 'fail' gate) is not ended by it.
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
from chart import services as chart_services
from chart.models import ChartRecord
from governance.pipeline.models import GateAction, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_sessions_check_their_client_while_a_statement_runs():
    assert settings.ATLAS_DB_CLIENT_CHECK_INTERVAL == "5s"
    with connection.cursor() as cursor:
        cursor.execute("SHOW client_connection_check_interval")
        assert cursor.fetchone() == ("5s",)


def test_sessions_end_a_transaction_left_idle_whatever_their_role():
    # In the connection's options, not only on the app role (setup_db_roles): a deploy
    # with one role, as docker compose and bin/run, has it too.
    assert settings.ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT == "10min"
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone() == ("10min",)


IDLE_CLIENT = textwrap.dedent(
    """
    import time

    import django

    django.setup()
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(7399, 2)")
        print(connection.connection.info.backend_pid, flush=True)
        time.sleep(60)  # a transaction forgotten, holding its lock
    """
)


def test_a_session_idle_in_a_transaction_is_ended_and_its_locks_freed():
    url = database_url(connection.settings_dict["NAME"])
    client = subprocess.Popen(
        [sys.executable, "-c", IDLE_CLIENT],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "atlas_site.settings.test",
            "DATABASE_URL": url,
            "ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT": "1s",
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        backend = int(client.stdout.readline())
        with psycopg.connect(url, autocommit=True) as observer:
            deadline = time.monotonic() + 10
            while observer.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]
            ).fetchone():
                assert time.monotonic() < deadline, "the idle transaction's session lived on"
                time.sleep(0.05)
            assert not observer.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 2 "
                "AND classid = 7399"
            ).fetchone()
    finally:
        client.kill()
        client.wait()


def test_a_promotion_under_a_fail_gate_may_wait_on_its_pool_longer_than_the_timeout(
    customers, land, monkeypatch
):
    """All its chunks in one transaction, idle while the next chunk is judged: the timeout
    of its session (1 s here) is raised for that transaction alone."""
    customers.gate_action = GateAction.FAIL
    customers.save()
    land(
        customers,
        [
            {"id": str(n), "email": f"u{n}@example.com", "tier": "gold", "amount": "2.50"}
            for n in range(1, 5)
        ],
    )
    write_chunk = chart_services.write_chunk

    def judged_slowly(**kwargs):
        time.sleep(1.5)  # idle in the transaction, as while the pool judges a slow chunk
        return write_chunk(**kwargs)

    monkeypatch.setattr(chart_services, "write_chunk", judged_slowly)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET idle_in_transaction_session_timeout = '1s'")
        run = chart_services.promote_to_chart(dataset=customers, triggered_by="test", chunk_size=2)
        with connection.cursor() as cursor:
            cursor.execute("SHOW idle_in_transaction_session_timeout")
            assert cursor.fetchone() == ("1s",)  # raised for that transaction only
    finally:
        connection.close()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ChartRecord.objects.filter(dataset=customers).count() == 4


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
