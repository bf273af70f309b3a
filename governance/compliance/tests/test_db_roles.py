"""Role separation with real PostgreSQL roles: the app role works with data but cannot
change, delete, truncate, alter or drop the audit log; the owner role runs the DDL.

Roles belong to the whole server, so each test makes its own with a random suffix and
drops them (after handing what they own back) when it ends.
"""

import uuid
from contextlib import contextmanager

import psycopg
import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction

from governance.compliance.db_roles import RoleSetupError, setup_db_roles
from governance.compliance.models import AuditAction, AuditLog
from governance.compliance.services import record_audit
from governance.pipeline.models import Dataset

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException)


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


@contextmanager
def as_role(role: str):
    """Django's own connection, logged in as `role` for the duration."""
    connection.close()
    previous = connection.settings_dict["USER"]
    connection.settings_dict["USER"] = role
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"] = previous


def connect_as(role: str) -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=role,
        autocommit=True,
    )


def refused(conn: psycopg.Connection, statement: str) -> str:
    with pytest.raises(REFUSED) as caught:
        conn.execute(statement)
    return str(caught.value)


def test_the_app_role_cannot_change_the_audit_log_but_does_its_work(roles):
    owner, app = roles
    call_command("setup_db_roles", owner=owner, app=app)

    with as_role(app):
        # Normal work through the ORM: the audit log is appended to and read, data changes.
        entry = record_audit(actor="app", action=AuditAction.RUN, detail="kept")
        assert AuditLog.objects.filter(detail="kept").count() == 1
        dataset = Dataset.objects.create(slug="roles", name="Roles")
        Dataset.objects.filter(pk=dataset.pk).update(name="Renamed")
        dataset.delete()
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            AuditLog.objects.filter(pk=entry.pk).update(detail="forged")
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            AuditLog.objects.filter(pk=entry.pk).delete()

    with connect_as(app) as conn:
        # The audit log, through its parent and directly on a partition.
        partition = conn.execute(
            "SELECT relid::regclass::text FROM pg_partition_tree('compliance.audit_log') "
            "WHERE isleaf LIMIT 1"
        ).fetchone()[0]
        for table in ("compliance.audit_log", partition):
            assert "permission denied" in refused(conn, f"UPDATE {table} SET detail = 'forged'")
            assert "permission denied" in refused(conn, f"DELETE FROM {table}")
            assert "permission denied" in refused(conn, f"TRUNCATE {table}")
        assert "must be owner" in refused(
            conn, "ALTER TABLE compliance.audit_log ADD COLUMN forged text"
        )
        assert "must be owner" in refused(
            conn, "ALTER TABLE compliance.audit_log DISABLE TRIGGER ALL"
        )
        assert "must be owner" in refused(conn, f"DROP TABLE {partition}")
        assert "must be owner" in refused(conn, "DROP TABLE compliance.audit_log")
        # No DDL anywhere: no new tables, no truncating data tables either.
        assert "permission denied" in refused(conn, "CREATE TABLE pipeline.intruder (id int)")
        assert "permission denied" in refused(conn, "CREATE TABLE public.intruder (id int)")
        assert "permission denied" in refused(conn, "TRUNCATE pipeline.dataset")
        assert "must be owner" in refused(conn, "DROP TABLE pipeline.dataset")

    with connect_as(owner) as conn:
        # The owner runs the DDL: a new audit log partition and a new table.
        conn.execute(
            "CREATE TABLE compliance.audit_log_2199_q1 PARTITION OF compliance.audit_log "
            "FOR VALUES FROM ('2199-01-01') TO ('2199-04-01')"
        )
        conn.execute("CREATE TABLE pipeline.later_model (id int)")

    with connect_as(app) as conn:
        # Default privileges: the new partition is append-only, the new table usable.
        conn.execute("SELECT count(*) FROM compliance.audit_log_2199_q1")
        assert "permission denied" in refused(conn, "DELETE FROM compliance.audit_log_2199_q1")
        conn.execute("INSERT INTO pipeline.later_model VALUES (1)")
        conn.execute("DELETE FROM pipeline.later_model")

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM compliance.audit_log WHERE detail = 'kept'")
        assert cursor.fetchone() == (1,)


def test_running_it_again_keeps_the_same_privileges(roles, capsys):
    owner, app = roles
    call_command("setup_db_roles", owner=owner, app=app)
    assert "Roles created: " + f"{owner}, {app}" in capsys.readouterr().out
    call_command("setup_db_roles", owner=owner, app=app)
    assert "Roles created: none (both existed)" in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, 'compliance.audit_log', 'INSERT'), "
            "has_table_privilege(%s, 'compliance.audit_log', 'UPDATE'), "
            "has_table_privilege(%s, 'pipeline.dataset', 'UPDATE'), "
            "has_table_privilege(%s, 'pipeline.dataset', 'TRUNCATE'), "
            "(SELECT tableowner FROM pg_tables "
            " WHERE schemaname = 'pipeline' AND tablename = 'dataset')",
            [app, app, app, app],
        )
        assert cursor.fetchone() == (True, False, True, False, owner)


def test_a_superuser_app_role_is_refused(roles):
    owner, app = roles
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{app}" SUPERUSER')
    with pytest.raises(RoleSetupError, match="superuser"):
        setup_db_roles(owner=owner, app=app)
    with pytest.raises(RoleSetupError, match="two different roles"):
        setup_db_roles(owner=owner, app=owner)
