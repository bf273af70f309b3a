"""Retention, archive and restore against the real PostgreSQL and a filesystem store."""

import gzip
import hashlib
import io
from datetime import date, datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from atlas_site.partitions import AUDIT_LOG, RAW_RECORDS, existing_partitions, table_columns
from explore.models import RawRecord
from governance.archive import selectors
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.archive.services.ddl import ArchiveError
from governance.archive.services.restore import restore_archived
from governance.archive.services.retention import apply_retention
from governance.archive.services.upkeep import ensure_partitions
from governance.archive.tests.conftest import OLD_MONTH, at, land_raw, make_partition, raw_rows_of
from governance.compliance.envelope import decrypt_bytes
from governance.compliance.models import AuditLog
from governance.compliance.tests.history import write_history
from governance.pipeline.models import Run, RunKind, RunStatus
from governance.pipeline.services import create_run

pytestmark = pytest.mark.django_db

FEB = date(2024, 2, 1)


def run_retention() -> Run:
    run = create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test")
    return apply_retention(run=run)


def attached(table=RAW_RECORDS) -> set[str]:
    return set(existing_partitions(table))


def newer_audits(since: int):
    """Audit entries after id `since`: the log outlives transactional tests' flushes."""
    return AuditLog.objects.filter(id__gt=since)


def last_audit_id() -> int:
    return AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0


def stored_keys() -> list[str]:
    found = []

    def walk(folder):
        dirs, files = default_storage.listdir(folder)
        found.extend(f"{folder}/{name}" for name in files)
        for sub in dirs:
            walk(f"{folder}/{sub}")

    if default_storage.exists("archive"):
        walk("archive")
    return sorted(found)


def test_archive_then_restore_gives_back_the_same_rows(dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    make_partition(RAW_RECORDS, FEB)
    land_raw(dataset, 60, at=at(OLD_MONTH))
    land_raw(dataset, 5, at=at(FEB))
    original = raw_rows_of(OLD_MONTH)
    assert len(original) == 60
    RetentionPolicy.objects.create(layer="explore", keep_months=12)

    run = run_retention()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == 65
    assert [item["partition"] for item in run.detail["retired"]] == [
        "raw_record_2024_01",
        "raw_record_2024_02",
    ]
    assert "every dataset with rows in it" in run.detail["rule"]
    assert not {"raw_record_2024_01", "raw_record_2024_02"} & attached()
    assert not RawRecord.objects.filter(received_at__lt=at(date(2024, 3, 1), 0)).exists()

    manifest = ArchivedPartition.objects.get(partition_name="raw_record_2024_01")
    assert manifest.table_name == "explore.raw_record"
    assert (manifest.range_start, manifest.range_end) == (at(OLD_MONTH, 0), at(FEB, 0))
    assert manifest.row_count == 60
    assert manifest.archived_by == "retention schedule"
    assert manifest.run == run
    assert manifest.object_key == (
        f"archive/explore/raw_record/raw_record_2024_01__2024-01-01_2024-02-01__run{run.pk}.csv.gz"
    )
    content = default_storage.open(manifest.object_key).read()
    assert (len(content), hashlib.sha256(content).hexdigest()) == (
        manifest.byte_size,
        manifest.sha256,
    )
    # Stored encrypted: the manifest's sha256 and size are those of the stored bytes.
    assert gzip.decompress(decrypt_bytes(content)).startswith(
        b"id,received_at,line_number,payload,raw_text,"
    )
    # (The audit log outlives a test's flush: entries are matched by this test's manifests.)
    for archived in ArchivedPartition.objects.all():
        entry = AuditLog.objects.get(
            object_type="archive.archivedpartition", object_id=str(archived.pk), action="delete"
        )
        assert f"archived {archived.row_count} rows" in entry.detail
        assert "verified" in entry.detail

    call_command("restore_partition", "explore.raw_record", "2024-01", actor="officer")

    assert raw_rows_of(OLD_MONTH) == original
    assert "raw_record_2024_01" in attached()
    manifest.refresh_from_db()
    assert manifest.restored_at is not None
    assert manifest.restored_by == "officer"
    assert AuditLog.objects.filter(
        object_id=str(manifest.pk), detail__startswith="restored 60 rows"
    ).exists()
    # Freshly restored, retention leaves it alone for a while.
    again = run_retention()
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert "raw_record_2024_01" in attached()
    [kept] = [k for k in again.detail["kept"] if k["partition"] == "raw_record_2024_01"]
    assert kept["status"] == selectors.RESTORED


@pytest.mark.s3
def test_archive_and_restore_through_s3(s3_storage, dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 40, at=at(OLD_MONTH))
    original = raw_rows_of(OLD_MONTH)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)

    run = run_retention()

    assert run.status == RunStatus.SUCCEEDED, run.error
    manifest = ArchivedPartition.objects.get()
    stored = s3_storage["client"].get_object(Bucket=s3_storage["bucket"], Key=manifest.object_key)
    body = stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest.sha256
    assert raw_rows_of(OLD_MONTH) == []

    restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original

    # A corrupt object is refused and leaves nothing half restored.
    second = ArchivedPartition.objects.create(
        table_name="explore.raw_record",
        partition_name="raw_record_2023_12",
        range_start=at(date(2023, 12, 1), 0),
        range_end=at(OLD_MONTH, 0),
        row_count=40,
        byte_size=manifest.byte_size,
        sha256=manifest.sha256,
        object_key="archive/explore/raw_record/corrupt.csv.gz",
        archived_by="tests",
    )
    s3_storage["client"].put_object(
        Bucket=s3_storage["bucket"], Key=second.object_key, Body=body[:-30] + b"\0" * 30
    )
    with pytest.raises(ArchiveError, match=r"cannot be read|does not match"):
        restore_archived(manifest=second, actor="tests")
    assert "raw_record_2023_12" not in attached()


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (
            "governance.archive.tests.storages.CorruptingStorage",
            "verification of .* failed|cannot be read back",
        ),
        ("governance.archive.tests.storages.ForgetfulStorage", "missing from object storage"),
    ],
)
def test_a_failed_verification_drops_nothing(settings, dataset, backend, reason):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": backend}}
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 30, at=at(OLD_MONTH))
    original = raw_rows_of(OLD_MONTH)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)

    run = run_retention()

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("nothing was dropped for: raw_record_2024_01: ")
    assert pytest.importorskip("re").search(reason, run.error), run.error
    assert run.detail["failed"] and run.rows_in == 0
    assert "raw_record_2024_01" in attached()
    assert raw_rows_of(OLD_MONTH) == original
    assert not ArchivedPartition.objects.exists()
    assert stored_keys() == []  # the bad object was removed


def test_a_legal_hold_stops_archive_and_drop(dataset, other_dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    make_partition(RAW_RECORDS, FEB)
    land_raw(dataset, 10, at=at(OLD_MONTH))
    land_raw(other_dataset, 10, at=at(OLD_MONTH))
    land_raw(other_dataset, 10, at=at(FEB))
    RetentionPolicy.objects.create(layer="explore", keep_months=12, action="delete")
    RetentionPolicy.objects.create(
        layer="explore",
        dataset=dataset,
        keep_months=12,
        legal_hold=True,
        legal_hold_reason="case 2026-17",
        enabled=False,  # a hold counts on a disabled policy too
    )

    run = run_retention()

    assert run.status == RunStatus.SUCCEEDED, run.error
    # January holds a dataset under hold: kept whole. February has only the other one.
    assert "raw_record_2024_01" in attached()
    assert "raw_record_2024_02" not in attached()
    assert len(raw_rows_of(OLD_MONTH)) == 20
    [held] = [k for k in run.detail["kept"] if k["partition"] == "raw_record_2024_01"]
    assert held["status"] == selectors.HELD
    assert "case 2026-17" in held["reason"]

    # A hold on the layer-wide policy keeps everything of the layer.
    RetentionPolicy.objects.filter(dataset=dataset).update(legal_hold=False, enabled=True)
    RetentionPolicy.objects.filter(dataset=None).update(legal_hold=True, legal_hold_reason="audit")
    run = run_retention()
    assert "raw_record_2024_01" in attached()
    assert {k["status"] for k in run.detail["kept"] if k["partition"] == "raw_record_2024_01"} == {
        selectors.HELD
    }


def test_a_partition_is_retired_only_when_every_dataset_in_it_has_expired(dataset, other_dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    make_partition(RAW_RECORDS, FEB)
    land_raw(dataset, 10, at=at(OLD_MONTH))
    land_raw(other_dataset, 10, at=at(OLD_MONTH))
    land_raw(dataset, 10, at=at(FEB))
    RetentionPolicy.objects.create(layer="explore", dataset=dataset, keep_months=12)

    plan = {p.partition_name: p for p in selectors.retention_plan()}
    assert plan["raw_record_2024_01"].status == selectors.NOT_COVERED
    assert f"dataset {other_dataset.pk}" in plan["raw_record_2024_01"].reason
    assert plan["raw_record_2024_02"].status == selectors.DUE

    # The other dataset keeps its rows far longer: January waits for it.
    RetentionPolicy.objects.create(layer="explore", dataset=other_dataset, keep_months=600)
    plan = {p.partition_name: p for p in selectors.retention_plan()}
    assert plan["raw_record_2024_01"].status == selectors.WAITING
    assert plan["raw_record_2024_01"].due_on == date(2074, 2, 1)
    assert selectors.next_to_archive()[0].partition_name == "raw_record_2024_02"

    run = run_retention()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "raw_record_2024_01" in attached()
    assert "raw_record_2024_02" not in attached()


def test_the_delete_action_drops_without_export(dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 25, at=at(OLD_MONTH))
    RetentionPolicy.objects.create(layer="explore", keep_months=12, action="delete")
    since = last_audit_id()

    run = run_retention()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "raw_record_2024_01" not in attached()
    assert not ArchivedPartition.objects.exists()
    assert stored_keys() == []
    entry = newer_audits(since).get(object_type="partition", object_id="raw_record_2024_01")
    assert entry.detail == "dropped raw_record_2024_01 with its 25 rows (policy action: delete)"


def test_the_audit_log_cannot_have_a_delete_policy():
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionPolicy.objects.create(layer="compliance", keep_months=12, action="delete")


def _refused(sql: str) -> None:
    with (
        pytest.raises(Exception, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def old_audit_entries(count: int, first: datetime) -> list[int]:
    """Entries of an earlier quarter (written as the owner can: see write_history)."""
    return write_history(
        [first + timedelta(hours=n) for n in range(1, count + 1)],
        actor="old",
        action="update",
        object_type="x",
        object_id="{n}",
        object_repr="r",
        detail='line\n"two"',
    )


def verified(quarter: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_log", quarter=quarter, stdout=out)
    return out.getvalue()


def test_an_audit_log_quarter_is_archived_and_restored_and_stays_append_only():
    q1 = date(2024, 1, 1)
    make_partition(AUDIT_LOG, q1)
    old_audit_entries(30, at(date(2024, 2, 1)))
    assert "30 entries verified" in verified("2024-Q1")
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT * FROM "compliance"."audit_log" WHERE at < %s ORDER BY id',
            [at(date(2024, 4, 1))],
        )
        original = cursor.fetchall()
    assert len(original) == 30
    RetentionPolicy.objects.create(layer="compliance", keep_months=12)

    run = run_retention()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "audit_log_2024_q1" not in attached(AUDIT_LOG)
    manifest = ArchivedPartition.objects.get(table_name="compliance.audit_log")
    assert manifest.row_count == 30
    # The archive itself is in the audit log, and the log still refuses changes.
    assert AuditLog.objects.filter(object_id=str(manifest.pk), action="delete").exists()
    _refused('UPDATE "compliance"."audit_log" SET actor = \'x\'')
    _refused('DELETE FROM "compliance"."audit_log"')
    _refused('TRUNCATE "compliance"."audit_log"')
    current = AUDIT_LOG.partition_name(AUDIT_LOG.period_start(date.today()))
    _refused(f'TRUNCATE "compliance"."{current}"')

    restore_archived(manifest=manifest, actor="officer")

    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT * FROM "compliance"."audit_log" WHERE at < %s ORDER BY id',
            [at(date(2024, 4, 1))],
        )
        assert cursor.fetchall() == original
    # The restored quarter's chain is whole again (ids, times and hashes kept as archived).
    assert "compliance.audit_log_2024_q1 (2024-Q1): 30 entries verified" in verified("2024-Q1")
    _refused('UPDATE "compliance"."audit_log_2024_q1" SET actor = \'x\'')
    _refused('DELETE FROM "compliance"."audit_log_2024_q1"')
    _refused('TRUNCATE "compliance"."audit_log_2024_q1"')


def test_an_audit_log_archive_made_before_the_chain_is_chained_when_restored():
    make_partition(AUDIT_LOG, date(2024, 1, 1))
    old_audit_entries(12, at(date(2024, 3, 1)))
    chain_columns = ("prev_hash", "hash")
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM "compliance"."audit_log_2024_q1" ORDER BY id')
        original = cursor.fetchall()
        # The rows as an archive made before migration 0009 held them: no chain columns.
        columns = [c for c in table_columns(AUDIT_LOG, cursor) if c not in chain_columns]
        column_sql = ", ".join(f'"{name}"' for name in columns)
        with cursor.copy(
            f'COPY (SELECT {column_sql} FROM "compliance"."audit_log_2024_q1" ORDER BY id) '
            "TO STDOUT (FORMAT csv, HEADER)"
        ) as copy:
            before_the_chain = gzip.compress(b"".join(bytes(block) for block in copy))
    RetentionPolicy.objects.create(layer="compliance", keep_months=12)
    assert run_retention().status == RunStatus.SUCCEEDED
    manifest = ArchivedPartition.objects.get(table_name="compliance.audit_log")
    default_storage.delete(manifest.object_key)
    default_storage.save(manifest.object_key, ContentFile(before_the_chain))
    ArchivedPartition.objects.filter(pk=manifest.pk).update(
        encryption_key_id=None,
        byte_size=len(before_the_chain),
        sha256=hashlib.sha256(before_the_chain).hexdigest(),
    )
    manifest.refresh_from_db()

    restore_archived(manifest=manifest, actor="officer")

    # Chained in id order from the rows as restored: the same hashes as before.
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM "compliance"."audit_log_2024_q1" ORDER BY id')
        assert cursor.fetchall() == original
    assert "12 entries verified" in verified("2024-Q1")
    _refused('UPDATE "compliance"."audit_log_2024_q1" SET actor = \'x\'')


def test_restore_refuses_a_range_with_rows_a_missing_or_corrupt_object(dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 20, at=at(OLD_MONTH))
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    assert run_retention().status == RunStatus.SUCCEEDED
    manifest = ArchivedPartition.objects.get()

    with pytest.raises(CommandError, match=r"no archived partition of explore\.raw_record starts"):
        call_command("restore_partition", "explore.raw_record", "2023-05")
    with pytest.raises(CommandError, match="does not begin a month"):
        call_command("restore_partition", "explore.raw_record", "2024-01-15")
    with pytest.raises(CommandError, match="not a partitioned Atlas table"):
        call_command("restore_partition", "explore.nothing", "2024-01")

    # Rows landed in the range meanwhile (in DEFAULT, no partition being there).
    land_raw(dataset, 1, at=at(OLD_MONTH))
    with pytest.raises(CommandError, match="already holds 1 rows in the DEFAULT"):
        call_command("restore_partition", "explore.raw_record", "raw_record_2024_01")
    RawRecord.objects.filter(received_at__lt=at(FEB, 0)).delete()

    content = default_storage.open(manifest.object_key).read()
    with default_storage.open(manifest.object_key, "wb") as stored:
        stored.write(
            gzip.compress(
                gzip.decompress(decrypt_bytes(content)) + b'9,2024-01-01,1,,x,"","",1,1\n'
            )
        )
    mismatch = r"does not match its manifest: sha256 .* 21 rows loaded"
    with pytest.raises(CommandError, match=mismatch):
        call_command("restore_partition", "explore.raw_record", "2024-01")
    assert "raw_record_2024_01" not in attached()
    assert not RawRecord.objects.filter(received_at__lt=at(FEB, 0)).exists()

    default_storage.delete(manifest.object_key)
    with pytest.raises(CommandError, match="missing from object storage"):
        call_command("restore_partition", "explore.raw_record", "2024-01")
    manifest.refresh_from_db()
    assert manifest.restored_at is None
    assert "raw_record_2024_01" not in attached()


def test_restore_refuses_a_partition_that_already_holds_rows(dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 20, at=at(OLD_MONTH))
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    assert run_retention().status == RunStatus.SUCCEEDED
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 2, at=at(OLD_MONTH))
    with pytest.raises(CommandError, match="raw_record_2024_01 already holds rows"):
        call_command("restore_partition", "explore.raw_record", "2024-01")
    assert len(raw_rows_of(OLD_MONTH)) == 2
    # Retention will not archive the range again while its first archive is out.
    [plan] = [p for p in selectors.retention_plan() if p.partition_name == "raw_record_2024_01"]
    assert plan.status == selectors.ARCHIVED_BEFORE


def test_upkeep_moves_rows_out_of_default_into_their_own_partitions(dataset):
    june = date(2023, 6, 1)
    land_raw(dataset, 12, at=at(june))
    land_raw(dataset, 3, at=at(date(2023, 7, 31), 23))
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM "explore"."raw_record_default" ORDER BY id')
        before = cursor.fetchall()
    old_audit_entries(3, at(date(2023, 5, 2)))
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT * FROM "compliance"."audit_log_default" WHERE at < %s ORDER BY id',
            [at(date(2023, 7, 1), 0)],
        )
        audit_before = cursor.fetchall()
    assert len(before) == 15

    since = last_audit_id()
    reports = {r.table: r for r in ensure_partitions()}

    assert reports["explore.raw_record"].moved == {
        "raw_record_2023_06": 12,
        "raw_record_2023_07": 3,
    }
    assert reports["compliance.audit_log"].moved == {"audit_log_2023_q2": 3}
    # The entries kept their ids, times and hashes, and their chain holds in the partition.
    with connection.cursor() as cursor:
        cursor.execute('SELECT * FROM "compliance"."audit_log_2023_q2" ORDER BY id')
        assert cursor.fetchall() == audit_before
    assert "compliance.audit_log_2023_q2 (2023-Q2): 3 entries verified" in verified("2023-Q2")
    assert reports["explore.raw_record"].rows_in_default == 0
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*) FROM "explore"."raw_record_default"')
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            'SELECT * FROM "explore"."raw_record_2023_06" UNION ALL '
            'SELECT * FROM "explore"."raw_record_2023_07" ORDER BY id'
        )
        assert cursor.fetchall() == before
    assert {"raw_record_2023_06", "raw_record_2023_07", "raw_record_default"} <= attached()
    assert newer_audits(since).filter(actor="partition upkeep").count() == 2
    # The new DEFAULT and the new quarter refuse changes like the rest of the log.
    _refused('TRUNCATE "compliance"."audit_log_default"')
    _refused('DELETE FROM "compliance"."audit_log_2023_q2"')
    # Nothing left to move the second time.
    assert all(not r.moved for r in ensure_partitions())


def test_facts_of_two_datasets_are_archived_when_both_expired(dataset, other_dataset):
    from decimal import Decimal

    from atlas_site.partitions import FACTS
    from navigate.models import Fact, MetricDefinition

    make_partition(FACTS, date(2020, 1, 1))
    for ds in (dataset, other_dataset):
        metric = MetricDefinition.objects.create(
            dataset=ds,
            slug=f"{ds.slug}-total",
            name="Total",
            aggregation="sum",
            value_field="amount",
            time_field="day",
        )
        Fact.objects.bulk_create(
            Fact(
                period_start=date(2020, month, 1),
                metric=metric,
                grain="month",
                dimensions={"tier": "gold"},
                dimension_key=f"k{month}",
                value=Decimal("12.3400000000") * month,
                record_count=month,
            )
            for month in range(1, 13)
        )
    before = sorted(Fact.objects.values_list("id", "period_start", "value", "dimensions"))
    RetentionPolicy.objects.create(
        layer="navigate", dataset=dataset, keep_months=24, action="delete"
    )
    RetentionPolicy.objects.create(layer="navigate", dataset=other_dataset, keep_months=24)

    [plan] = [p for p in selectors.next_to_archive() if p.table_name == "navigate.fact"]
    assert (plan.status, plan.action, plan.due_on) == (selectors.DUE, "archive", date(2023, 1, 1))
    assert plan.datasets == sorted([dataset.pk, other_dataset.pk])

    run = run_retention()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert not Fact.objects.exists()
    manifest = ArchivedPartition.objects.get(table_name="navigate.fact")
    assert manifest.row_count == 24

    call_command("restore_partition", "navigate.fact", "2020")
    after = sorted(Fact.objects.values_list("id", "period_start", "value", "dimensions"))
    assert after == before


def test_upkeep_does_not_make_an_archived_range_again(dataset):
    current = RAW_RECORDS.period_start(date.today())
    previous = RAW_RECORDS.shift(current, -1)
    name = RAW_RECORDS.partition_name(previous)
    ensure_partitions()
    land_raw(dataset, 3, at=at(previous))
    RetentionPolicy.objects.create(layer="explore", keep_months=1)
    later = RAW_RECORDS.shift(previous, 3)

    run = apply_retention(
        run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test"), today=later
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ArchivedPartition.objects.get(partition_name=name).row_count == 3
    ensure_partitions()
    assert name not in attached()

    # Made again by hand and still empty: the next run drops it (its rows are archived).
    make_partition(RAW_RECORDS, previous)
    [plan] = [p for p in selectors.retention_plan(today=later) if p.partition_name == name]
    assert (plan.status, plan.action) == (selectors.DUE, "delete")
    assert "rows are archived" in plan.reason
    run = apply_retention(
        run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test"), today=later
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert name not in attached()
    assert ArchivedPartition.objects.filter(partition_name=name).count() == 1
