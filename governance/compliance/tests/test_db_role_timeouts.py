"""The app role's sessions cannot sit idle in a transaction, holding locks, for ever."""

import time
import uuid

import psycopg
import pytest
from django.db import connection

from atlas_site import advisory_locks
from governance.compliance.db_roles import setup_db_roles

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def roles():
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"atlas_owner_{suffix}", f"atlas_app_{suffix}"
    yield owner, app
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (me,) = cursor.fetchone()
        for role in (owner, app):
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone():
                cursor.execute(f'REASSIGN OWNED BY "{role}" TO "{me}"')
                cursor.execute(f'DROP OWNED BY "{role}"')
                cursor.execute(f'DROP ROLE "{role}"')


def connect_as(role: str) -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=role,
        autocommit=True,
    )


def test_an_app_session_idle_in_a_transaction_is_ended_and_its_locks_freed(roles, settings):
    owner, app = roles
    settings.ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT = "1s"
    setup_db_roles(owner=owner, app=app)

    with connect_as(app) as session:
        assert session.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1s",)
        # A transaction left open while holding a run's lock, as a task's connection kept
        # alive by a stray process would be.
        session.execute("BEGIN")
        session.execute("SELECT pg_advisory_lock(%s, 424242)", [advisory_locks.RUN])
        assert advisory_locks.is_held(advisory_locks.RUN, 424242)
        time.sleep(2.5)
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout"):
            session.execute("SELECT 1")
    deadline = time.monotonic() + 5
    while advisory_locks.is_held(advisory_locks.RUN, 424242):
        assert time.monotonic() < deadline, "the ended session's lock is still held"
        time.sleep(0.05)


def test_the_setting_is_applied_again_when_roles_are_set_up_again(roles, settings):
    owner, app = roles
    setup_db_roles(owner=owner, app=app)
    with connect_as(app) as session:
        assert session.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("10min",)
    settings.ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT = "0"
    setup_db_roles(owner=owner, app=app)
    with connect_as(app) as session:
        assert session.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("0",)
