"""The audit log's order and time are the database's, and its entries are chained.

Whatever a client sends, the trigger `seal_entry` sets `at`, `id`, `prev_hash` and `hash`;
`manage.py verify_audit_log` recomputes the chain and finds an entry changed, back-dated
or deleted by a role that can disable triggers (the owner), at the entry where it
happened. The app role's own attempts are in test_db_roles.py.
"""

import hashlib
import io
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from atlas_site import advisory_locks
from atlas_site.partitions import AUDIT_LOG
from governance.compliance import audit_chain
from governance.compliance.models import AuditAction, AuditLog
from governance.compliance.services import record_audit
from governance.compliance.tests.history import write_history

INSERT = (
    'INSERT INTO "compliance"."audit_log" (actor, action, object_type, object_id, '
    "object_repr, user_agent, detail{extra}) VALUES ('client', 'update', '', '', '', '', "
    "%s{placeholders}) RETURNING id, at, prev_hash, hash"
)


def insert(cursor, detail: str, **chosen):
    """A raw INSERT naming the columns in `chosen` too; returns (id, at, prev_hash, hash)."""
    extra = "".join(f", {name}" for name in chosen)
    cursor.execute(
        INSERT.format(extra=extra, placeholders=", %s" * len(chosen)),
        [detail, *chosen.values()],
    )
    return cursor.fetchone()


def verify(quarter: date | None = None) -> tuple[str, str | None]:
    """(output, error) of `manage.py verify_audit_log`; error is None when it succeeded."""
    out = io.StringIO()
    options = {"quarter": audit_chain.quarter_label(quarter)} if quarter else {}
    try:
        call_command("verify_audit_log", stdout=out, **options)
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def this_quarter() -> date:
    return AUDIT_LOG.period_start(timezone.now().astimezone(UTC).date())


def quarter_times(start: date, count: int) -> list[datetime]:
    """`count` times a day apart inside the quarter starting at `start`."""
    first = datetime(start.year, start.month, start.day, 12, tzinfo=UTC)
    return [first + timedelta(days=n) for n in range(count)]


def own_connection() -> psycopg.Connection:
    """A connection of its own to the test database, as the test database's user."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=settings["USER"],
        autocommit=True,
    )


def owner_sql(statement: str, params=()) -> None:
    """As a role that owns the log (the test database's user): triggers disabled."""
    with connection.cursor() as cursor:
        cursor.execute('ALTER TABLE "compliance"."audit_log" DISABLE TRIGGER USER')
        cursor.execute(statement, params)
        cursor.execute('ALTER TABLE "compliance"."audit_log" ENABLE TRIGGER USER')


# --- What the database sets -------------------------------------------------------------


@pytest.mark.django_db
def test_the_database_sets_time_id_and_hashes_whatever_the_client_sends():
    quarter_start = datetime.combine(this_quarter(), datetime.min.time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        first = insert(cursor, "first")
        before = datetime.now(UTC)
        chosen_at = quarter_start + timedelta(seconds=1)  # this quarter, but not now
        second = insert(
            cursor,
            "chosen values",
            id=1,
            at=chosen_at,
            prev_hash=b"\x00" * 32,
            hash=b"\x01" * 32,
        )
        after = datetime.now(UTC)

    entry_id, at, prev_hash, digest = second
    assert at != chosen_at and before <= at <= after
    assert entry_id > first[0] and entry_id != 1
    assert bytes(prev_hash) == bytes(first[3])  # linked to the entry before it
    assert bytes(digest) not in (b"\x01" * 32, b"")
    assert verify(this_quarter())[1] is None


@pytest.mark.django_db
def test_an_entry_dated_in_another_quarter_is_refused():
    with pytest.raises(DatabaseError, match='sets "at" itself'), transaction.atomic():
        AuditLog.objects.create(
            at=datetime(2020, 1, 1, tzinfo=UTC), actor="forger", action=AuditAction.UPDATE
        )
    assert not AuditLog.objects.filter(actor="forger").exists()


@pytest.mark.django_db
def test_record_audit_returns_what_the_database_wrote():
    first = record_audit(actor="tests", action=AuditAction.ACTION, detail="one")
    second = record_audit(actor="tests", action=AuditAction.ACTION, detail="two")
    stored = AuditLog.objects.get(pk=second.pk)
    assert (second.at, bytes(second.prev_hash), bytes(second.hash)) == (
        stored.at,
        bytes(stored.prev_hash),
        bytes(stored.hash),
    )
    assert bytes(second.prev_hash) == bytes(first.hash)
    assert len(bytes(second.hash)) == 32


@pytest.mark.django_db
def test_the_first_entry_of_a_quarter_links_to_its_genesis_value():
    [first, second] = write_history(quarter_times(date(2001, 1, 1), 2))
    entries = AuditLog.objects.filter(pk__in=[first, second]).order_by("id")
    assert bytes(entries[0].prev_hash) == audit_chain.genesis("2001-Q1")
    genesis = hashlib.sha256(b"compliance.audit_log 2001-Q1").digest()
    assert audit_chain.genesis("2001-Q1") == genesis
    assert bytes(entries[1].prev_hash) == bytes(entries[0].hash)


@pytest.mark.django_db
def test_appends_in_a_repeatable_read_transaction_are_refused():
    # Its snapshot could be older than the quarter's last entry, which it would not see.
    with own_connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.Error, match="READ COMMITTED transactions only"):
            insert(conn.cursor(), "under a snapshot")


@pytest.mark.django_db
def test_every_partition_made_later_is_sealed_too():
    from governance.archive.services.upkeep import ensure_partitions

    ensure_partitions(quarters=1, today=date(2035, 2, 1))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgenabled FROM pg_partition_tree('compliance.audit_log') p "
            "JOIN pg_class c ON c.oid = p.relid "
            "LEFT JOIN pg_trigger t ON t.tgrelid = p.relid AND t.tgname = 'seal_entry'"
        )
        found = dict(cursor.fetchall())
    assert "audit_log_2035_q1" in found
    assert set(found.values()) == {"O"}, found  # on the parent and on every partition
    with (
        connection.cursor() as cursor,
        pytest.raises(DatabaseError, match='sets "at" itself'),
        transaction.atomic(),
    ):
        insert(cursor, "into the future", at=datetime(2035, 2, 2, tzinfo=UTC))


# --- Verification ----------------------------------------------------------------------


@pytest.mark.django_db
def test_verification_counts_the_entries_and_names_each_quarters_last_one():
    ids = write_history(quarter_times(date(2001, 4, 1), 5))
    record_audit(actor="tests", action=AuditAction.ACTION, detail="now")
    output, error = verify(date(2001, 4, 1))
    assert error is None, output
    assert "2001-Q2): 5 entries verified" in output
    assert f"2001-Q2 last id {ids[-1]}, hash " in output
    assert output.rstrip().endswith("5 entries verified")

    output, error = verify()  # every partition
    assert error is None, output
    assert "compliance.audit_log_default" in output


def test_an_unknown_quarter_is_refused():
    with pytest.raises(CommandError, match="not a quarter: write it as 2026-Q4"):
        call_command("verify_audit_log", quarter="2026-13")
    assert audit_chain.parse_quarter("2026q4") == date(2026, 10, 1)


@pytest.mark.django_db
def test_an_entry_changed_by_the_owner_is_found():
    quarter = date(2001, 7, 1)
    ids = write_history(quarter_times(quarter, 6), detail="entry {n}")
    owner_sql('UPDATE "compliance"."audit_log" SET detail = %s WHERE id = %s', ["forged", ids[3]])
    output, error = verify(quarter)
    assert error is not None and f"at id {ids[3]}" in error
    assert f"BROKEN at id {ids[3]} (2001-Q3), after 3 entries verified" in output
    assert "it was changed after it was written" in output


@pytest.mark.django_db
def test_an_entry_back_dated_by_the_owner_is_found():
    quarter = date(2001, 10, 1)
    ids = write_history(quarter_times(quarter, 6))
    owner_sql(
        'UPDATE "compliance"."audit_log" SET at = at - interval \'1 hour\' WHERE id = %s',
        [ids[2]],
    )
    output, _ = verify(quarter)
    assert f"BROKEN at id {ids[2]} (2001-Q4), after 2 entries verified" in output, output
    assert "it was changed after it was written" in output


@pytest.mark.django_db
def test_an_entry_back_dated_into_an_earlier_quarter_is_found_there():
    earlier, later = date(2002, 1, 1), date(2002, 4, 1)
    write_history(quarter_times(earlier, 3))
    ids = write_history(quarter_times(later, 4))
    owner_sql(
        'UPDATE "compliance"."audit_log" SET at = %s WHERE id = %s',
        [datetime(2002, 2, 1, tzinfo=UTC), ids[1]],
    )
    output, _ = verify(earlier)
    assert f"BROKEN at id {ids[1]} (2002-Q1)" in output, output
    output, _ = verify(later)  # and the quarter it left has a gap
    assert f"BROKEN at id {ids[2]} (2002-Q2)" in output, output
    assert f"the entry before it, id {ids[0]}" in output


@pytest.mark.django_db
def test_an_entry_deleted_by_the_owner_is_found_at_the_next_one():
    quarter = date(2002, 7, 1)
    ids = write_history(quarter_times(quarter, 6))
    owner_sql('DELETE FROM "compliance"."audit_log" WHERE id = %s', [ids[2]])
    output, error = verify(quarter)
    assert f"BROKEN at id {ids[3]} (2002-Q3), after 2 entries verified" in output, output
    assert f"the entry before it, id {ids[1]}, hashes to" in output
    assert "an entry between them was deleted" in output
    assert error is not None


@pytest.mark.django_db
def test_the_first_entry_deleted_by_the_owner_is_found():
    quarter = date(2002, 10, 1)
    ids = write_history(quarter_times(quarter, 3))
    owner_sql('DELETE FROM "compliance"."audit_log" WHERE id = %s', [ids[0]])
    output, _ = verify(quarter)
    assert f"BROKEN at id {ids[1]} (2002-Q4), after 0 entries verified" in output, output
    assert "entries before it were deleted" in output


@pytest.mark.django_db
def test_an_entry_changed_and_rehashed_by_the_owner_is_found_at_the_next_one():
    quarter = date(2003, 1, 1)
    ids = write_history(quarter_times(quarter, 5))
    owner_sql('UPDATE "compliance"."audit_log" SET detail = %s WHERE id = %s', ["forged", ids[1]])
    with connection.cursor() as cursor:  # its own hash made to match again
        cursor.execute(
            f"SELECT prev_hash, {audit_chain.PAYLOAD_SQL.format(t='a')} "
            'FROM "compliance"."audit_log" a WHERE id = %s',
            [ids[1]],
        )
        prev_hash, payload = cursor.fetchone()
    owner_sql(
        'UPDATE "compliance"."audit_log" SET hash = %s WHERE id = %s',
        [audit_chain.entry_hash(bytes(prev_hash), payload), ids[1]],
    )
    output, _ = verify(quarter)
    assert f"BROKEN at id {ids[2]} (2003-Q1), after 2 entries verified" in output, output
    assert f"or id {ids[1]} was changed (and re-hashed)" in output


@pytest.mark.django_db
def test_rechain_chains_entries_written_before_the_chain():
    """What migration 0009 does for the entries already there: chained in id order."""
    quarter = date(2003, 4, 1)
    ids = write_history(quarter_times(quarter, 4))
    owner_sql(
        "UPDATE \"compliance\".\"audit_log\" SET prev_hash = '', hash = '' WHERE id = ANY(%s)",
        [ids],
    )
    output, _ = verify(quarter)
    assert f"BROKEN at id {ids[0]}" in output

    with connection.cursor() as cursor:
        assert audit_chain.rechain(cursor, AUDIT_LOG.default_partition, quarter=quarter) == 4

    output, error = verify(quarter)
    assert error is None, output
    assert "4 entries verified" in output
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(pk=ids[0]).update(detail="after the rechain")


# --- Concurrency ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_append_waits_for_its_quarters_lock():
    quarter = this_quarter()
    key = quarter.year * 10 + (quarter.month - 1) // 3 + 1
    with own_connection() as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", [advisory_locks.AUDIT_CHAIN, key])
        with own_connection() as writer:
            writer.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                insert(writer.cursor(), "waits for the lock")


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_link_to_the_same_entry():
    writers, per_writer = 6, 40
    marker = uuid.uuid4().hex
    errors = []
    start = threading.Barrier(writers)

    def write(number: int) -> None:
        try:
            with own_connection() as conn:
                start.wait()
                for n in range(per_writer):
                    if n % 4 == 0:  # some transactions append several entries
                        with conn.transaction():
                            insert(conn.cursor(), f"{marker} {number}.{n}")
                            insert(conn.cursor(), f"{marker} {number}.{n} bis")
                    else:
                        insert(conn.cursor(), f"{marker} {number}.{n}")
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT prev_hash), count(DISTINCT hash) "
            'FROM "compliance"."audit_log" WHERE detail LIKE %s',
            [f"{marker} %"],
        )
        total, predecessors, hashes = cursor.fetchone()
    assert total == writers * per_writer * 5 // 4
    assert predecessors == hashes == total
    output, error = verify(this_quarter())
    assert error is None, output
