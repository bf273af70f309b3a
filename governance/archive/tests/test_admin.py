"""The archive admin: policies and legal holds, the plan, run now, restore, runs."""

import pytest
from django.urls import reverse

from atlas_site.partitions import RAW_RECORDS, existing_partitions
from governance.archive.models import ArchivedPartition, ArchiveRun, RetentionPolicy
from governance.archive.services.retention import apply_retention
from governance.archive.tests.conftest import OLD_MONTH, at, land_raw, make_partition, raw_rows_of
from governance.compliance.models import AuditLog
from governance.pipeline.models import RunKind, RunStatus
from governance.pipeline.services import create_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def archived(dataset):
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 15, at=at(OLD_MONTH))
    original = raw_rows_of(OLD_MONTH)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    run = apply_retention(run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    return ArchivedPartition.objects.get(), original, run


def test_a_legal_hold_needs_its_reason_in_the_form(client, officer):
    client.force_login(officer)
    response = client.post(
        reverse("admin:archive_retentionpolicy_add"),
        {"layer": "explore", "keep_months": 12, "action": "archive", "legal_hold": "on"},
    )
    assert response.status_code == 200
    assert "A legal hold needs its reason." in response.content.decode()
    response = client.post(
        reverse("admin:archive_retentionpolicy_add"),
        {"layer": "compliance", "keep_months": 12, "action": "delete", "enabled": "on"},
    )
    assert "The audit log is archived, never deleted." in response.content.decode()
    response = client.post(
        reverse("admin:archive_retentionpolicy_add"),
        {
            "layer": "explore",
            "keep_months": 12,
            "action": "archive",
            "legal_hold": "on",
            "legal_hold_reason": "litigation 42",
        },
    )
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get()
    assert policy.legal_hold_reason == "litigation 42"
    assert AuditLog.objects.filter(
        object_type="archive.retentionpolicy", object_id=str(policy.pk), actor="officer"
    ).exists()


def test_the_plan_page_and_run_now(client, officer, viewer, archived):
    client.force_login(viewer)
    plan_url = reverse("admin:archive_retentionpolicy_plan")
    page = client.get(plan_url).content.decode()
    assert "every dataset with rows in it" in page
    assert "Run retention now" not in page
    assert client.post(reverse("admin:archive_retentionpolicy_run")).status_code == 403

    client.force_login(officer)
    assert "Run retention now" in client.get(plan_url).content.decode()
    response = client.post(reverse("admin:archive_retentionpolicy_run"))
    assert response.status_code == 302
    run = ArchiveRun.objects.order_by("-id").first()
    assert (run.status, run.triggered_by, run.started_by) == (
        RunStatus.QUEUED,
        "officer",
        officer,
    )


def test_the_run_page_lists_what_was_archived(client, officer, archived):
    manifest, _original, run = archived
    client.force_login(officer)
    page = client.get(reverse("admin:archive_archiverun_change", args=[run.pk])).content.decode()
    assert manifest.object_key in page
    assert "15 rows" in page
    listing = client.get(reverse("admin:archive_archiverun_changelist")).content.decode()
    assert f">{run.pk}<" in listing


def test_the_restore_action(client, officer, steward, archived):
    manifest, original, _run = archived
    changelist = reverse("admin:archive_archivedpartition_changelist")

    client.force_login(steward)
    page = client.get(changelist).content.decode()
    assert manifest.partition_name in page
    assert 'value="restore"' not in page

    client.force_login(officer)
    assert 'value="restore"' in client.get(changelist).content.decode()
    response = client.post(
        changelist,
        {"action": "restore", "_selected_action": [manifest.pk]},
        follow=True,
    )
    assert "Restored raw_record_2024_01: 15 rows" in response.content.decode()
    assert raw_rows_of(OLD_MONTH) == original
    assert "raw_record_2024_01" in existing_partitions(RAW_RECORDS)
    manifest.refresh_from_db()
    assert manifest.restored_by == "officer"

    response = client.post(
        changelist, {"action": "restore", "_selected_action": [manifest.pk]}, follow=True
    )
    assert "restored already" in response.content.decode()
