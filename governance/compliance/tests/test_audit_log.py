"""The audit log is append-only in the database itself."""

import pytest
from django.db import DatabaseError, connection, transaction

from atlas_site.partitions import AUDIT_LOG, existing_partitions
from governance.compliance.models import AuditAction, AuditLog
from governance.compliance.services import record_audit, record_change, snapshot


@pytest.fixture
def entry(db):
    return record_audit(actor="test-suite", action=AuditAction.ACTION, detail="kept forever")


def _refused(sql: str, params=()):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def test_update_is_refused(entry):
    _refused('UPDATE "compliance"."audit_log" SET detail = %s WHERE id = %s', ["x", entry.id])
    entry.refresh_from_db()
    assert entry.detail == "kept forever"


def test_orm_update_and_delete_are_refused(entry):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).update(detail="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).delete()
    assert AuditLog.objects.filter(pk=entry.pk, detail="kept forever").exists()


def test_delete_is_refused(entry):
    _refused('DELETE FROM "compliance"."audit_log" WHERE id = %s', [entry.id])


def test_truncate_is_refused_on_the_table_and_each_partition(entry):
    _refused('TRUNCATE "compliance"."audit_log"')
    for partition in existing_partitions(AUDIT_LOG):
        _refused(f'TRUNCATE "compliance"."{partition}"')
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_update_through_a_partition_is_refused(entry):
    partition = AUDIT_LOG.partition_name(AUDIT_LOG.period_start(entry.at.date()))
    _refused(f'UPDATE "compliance"."{partition}" SET actor = %s', ["someone-else"])


def test_new_partitions_are_protected_too(db):
    from datetime import date

    from governance.archive.services.upkeep import ensure_partitions

    ensure_partitions(quarters=1, today=date(2035, 2, 1))
    _refused('TRUNCATE "compliance"."audit_log_2035_q1"')


def test_record_change_stores_only_what_changed(dataset):
    before = snapshot(dataset)
    dataset.name = "Customer orders"
    dataset.save()
    entry = record_change(actor="test-suite", instance=dataset, before=before)
    assert entry.action == AuditAction.UPDATE
    assert entry.before == {"name": "Orders", "updated_at": before["updated_at"]}
    assert entry.after["name"] == "Customer orders"
    assert entry.object_type == "pipeline.dataset"
    assert entry.object_id == str(dataset.pk)


def test_entries_name_a_user_actor(dataset, steward):
    entry = record_change(actor=steward, instance=dataset, before=None)
    assert entry.actor == "steward"
    assert entry.actor_id == steward.pk
    assert entry.action == AuditAction.CREATE
    assert entry.after["slug"] == "orders"
