"""Role separation with real PostgreSQL roles: the app role works with data but cannot
change, delete, truncate, alter or drop the audit log; the owner role runs the DDL.

Roles belong to the whole server, so each test makes its own with a random suffix and
drops them (after handing what they own back) when it ends.
"""

import io
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection, transaction

from governance.compliance import audit_chain
from governance.compliance.db_roles import SCHEMAS, RoleSetupError, setup_db_roles
from governance.compliance.models import AuditAction, AuditLog
from governance.compliance.services import record_audit
from governance.compliance.tests.history import write_history
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


def _audit_sequence() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('compliance.audit_log', 'id')")
        return cursor.fetchone()[0]


def test_the_app_role_cannot_choose_the_audit_logs_order_or_time(roles):
    owner, app = roles
    call_command("setup_db_roles", owner=owner, app=app)
    sequence = _audit_sequence()
    with connection.cursor() as cursor:
        # nextval only on the audit log's ids; every other sequence as before.
        cursor.execute(
            "SELECT has_sequence_privilege(%s, %s, 'USAGE'), "
            "has_sequence_privilege(%s, %s, 'UPDATE'), has_sequence_privilege(%s, %s, 'SELECT')",
            [app, sequence] * 3,
        )
        assert cursor.fetchone() == (True, False, False)
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE has_sequence_privilege(%s, c.oid, 'USAGE') "
            "AND has_sequence_privilege(%s, c.oid, 'SELECT') "
            "AND has_sequence_privilege(%s, c.oid, 'UPDATE')) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'S' AND n.nspname = ANY(%s) AND c.oid <> %s::regclass",
            [app, app, app, list(SCHEMAS), sequence],
        )
        others, usable = cursor.fetchone()
        assert others > 10 and usable == others

    with connect_as(app) as conn:
        last = conn.execute(
            "INSERT INTO compliance.audit_log (actor, action, object_type, object_id, "
            "object_repr, user_agent, detail) VALUES ('app', 'run', '', '', '', '', 'first') "
            "RETURNING id"
        ).fetchone()[0]
        # The sequence cannot be moved back, so ids are never reused.
        assert "permission denied" in refused(conn, f"SELECT setval('{sequence}', 1)")
        assert "must be owner" in refused(conn, f"ALTER SEQUENCE {sequence} RESTART WITH 1")
        assert "must be owner" in refused(
            conn, "ALTER TABLE compliance.audit_log DISABLE TRIGGER seal_entry"
        )
        # Chosen id, time (this quarter) and hashes are overridden ...
        quarter_start = conn.execute(
            "SELECT date_trunc('quarter', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        ).fetchone()[0]
        chosen = conn.execute(
            "INSERT INTO compliance.audit_log (id, at, actor, action, object_type, object_id, "
            "object_repr, user_agent, detail, prev_hash, hash) VALUES "
            "(1, %s, 'someone else', 'update', '', '', '', '', 'chosen', '\\x00', '\\x00') "
            "RETURNING id, at, statement_timestamp(), prev_hash, hash",
            [quarter_start],
        ).fetchone()
        assert chosen[0] > last and chosen[1] == chosen[2] != quarter_start
        assert bytes(chosen[3]) != b"\x00" and len(bytes(chosen[4])) == 32
        # ... and a time in another quarter is refused, through the parent or a partition.
        assert 'sets "at" itself' in refused(
            conn,
            "INSERT INTO compliance.audit_log (at, actor, action, object_type, object_id, "
            "object_repr, user_agent, detail) VALUES ('2020-01-01', 'app', 'run', '', '', '', "
            "'', 'back-dated')",
        )
        assert 'sets "at" itself' in refused(
            conn,
            "INSERT INTO compliance.audit_log_default (id, at, actor, action, object_type, "
            "object_id, object_repr, user_agent, detail) VALUES (1, '2020-01-01', 'app', "
            "'run', '', '', '', '', 'back-dated')",
        )
        for statement in (
            f"UPDATE compliance.audit_log SET detail = 'forged' WHERE id = {last}",
            f"UPDATE compliance.audit_log SET at = at - interval '1 day' WHERE id = {last}",
            f"DELETE FROM compliance.audit_log WHERE id = {last}",
        ):
            assert "permission denied" in refused(conn, statement)

    out = io.StringIO()
    label = audit_chain.quarter_label(quarter_start.astimezone(UTC).date())
    call_command("verify_audit_log", quarter=label, stdout=out)
    assert "entries verified" in out.getvalue()


def test_forgeries_by_the_owner_role_are_found_where_they_are(roles):
    """The owner can disable triggers: what it changes, back-dates or deletes breaks the
    chain at that entry (each forgery below is earlier than the last one found)."""
    owner, app = roles
    make_partition = "CREATE TABLE compliance.audit_log_2004_q1 PARTITION OF " + (
        "compliance.audit_log FOR VALUES FROM ('2004-01-01 00:00+00') TO ('2004-04-01 00:00+00')"
    )
    with connection.cursor() as cursor:
        cursor.execute(make_partition)
    try:
        ids = write_history(
            [datetime(2004, 1, 1, 12, tzinfo=UTC) + timedelta(days=n) for n in range(10)],
            detail="entry {n}",
        )
        call_command("setup_db_roles", owner=owner, app=app)

        def as_owner(statement: str) -> None:
            with connect_as(owner) as conn, conn.transaction():
                table = "compliance.audit_log_2004_q1"
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER refuse_update_delete")
                conn.execute(statement)
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER refuse_update_delete")

        def first_break() -> str:
            out = io.StringIO()
            with pytest.raises(CommandError, match="chain is broken"):
                call_command("verify_audit_log", quarter="2004-Q1", stdout=out)
            return out.getvalue()

        out = io.StringIO()
        call_command("verify_audit_log", quarter="2004-Q1", stdout=out)
        assert "10 entries verified" in out.getvalue()

        as_owner(f"DELETE FROM compliance.audit_log WHERE id = {ids[7]}")
        assert f"BROKEN at id {ids[8]} (2004-Q1), after 7 entries" in first_break()

        as_owner(
            f"UPDATE compliance.audit_log SET at = at - interval '3 hours' WHERE id = {ids[5]}"
        )
        assert f"BROKEN at id {ids[5]} (2004-Q1), after 5 entries" in first_break()

        as_owner(f"UPDATE compliance.audit_log SET detail = 'forged' WHERE id = {ids[2]}")
        found = first_break()
        assert f"BROKEN at id {ids[2]} (2004-Q1), after 2 entries" in found
        assert "changed after it was written" in found
        # Entries of this quarter inserted by the owner are stamped now: refused here.
        with connect_as(owner) as conn:
            assert 'sets "at" itself' in refused(
                conn,
                "INSERT INTO compliance.audit_log_2004_q1 (id, at, actor, action, object_type, "
                "object_id, object_repr, user_agent, detail) VALUES (1, '2004-02-01', 'owner', "
                "'run', '', '', '', '', 'inserted')",
            )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS compliance.audit_log_2004_q1")


def test_the_reporting_role_logs_in_read_only_and_reads_only_the_reporting_views(roles):
    owner, app = roles
    reporting = app.replace("atlas_app_", "atlas_reporting_")
    Dataset.objects.create(slug="roles", name="Roles")  # its view is built on commit
    out = io.StringIO()
    try:
        call_command("setup_db_roles", owner=owner, app=app, reporting=reporting, stdout=out)
        assert f"{reporting!r} may read only the views of the reporting schema" in out.getvalue()
        call_command("setup_db_roles", owner=owner, app=app, reporting=reporting, stdout=out)
        assert "Roles created: none (all existed)" in out.getvalue()
        Dataset.objects.create(slug="later", name="Later")  # rebuilt: both views readable

        with connect_as(reporting) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            assert conn.execute("SELECT count(*) FROM reporting.dataset_roles").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM reporting.dataset_later").fetchone() == (0,)
            for table in (
                "pipeline.dataset",
                "chart.chart_record",
                "explore.raw_record",
                "navigate.fact",
                "compliance.audit_log",
                "public.auth_user",
            ):
                assert "permission denied" in refused(conn, f"SELECT * FROM {table}")
            # A logged-in session cannot write anything, not even a temporary table.
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("CREATE TEMPORARY TABLE scratch (id int)")
            assert "permission denied" in refused(conn, "DELETE FROM reporting.dataset_roles")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT has_schema_privilege(%s, 'reporting', 'CREATE'), "
                "has_schema_privilege(%s, 'reporting', 'USAGE'), "
                "has_schema_privilege(%s, 'reporting', 'CREATE'), "
                "has_table_privilege(%s, 'reporting.dataset_later', 'SELECT'), "
                "has_table_privilege(%s, 'reporting.dataset_later', 'DELETE')",
                [app, app, reporting, reporting, reporting],
            )
            assert cursor.fetchone() == (False, False, False, True, False)
        with pytest.raises(RoleSetupError, match="a role of its own"):
            setup_db_roles(owner=owner, app=app, reporting=app)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reporting])
            if cursor.fetchone():
                cursor.execute(f'DROP OWNED BY "{reporting}"')
                cursor.execute(f'DROP ROLE "{reporting}"')
