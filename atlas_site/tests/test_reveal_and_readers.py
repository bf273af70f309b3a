"""Revealing from the record pages, and datasets limited to groups, through the admin."""

import io

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.urls import reverse

from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from chart.services import promote_to_chart
from explore import services as ingest
from explore.models import LandingBatch, RawRecord
from governance.compliance.clearance import clearance_codename
from governance.compliance.models import AuditAction, AuditLog, ClassificationLevel
from governance.compliance.roles import COMPLIANCE_OFFICER
from governance.quality.models import CheckResult

pytestmark = pytest.mark.django_db

SSN = "123-45-6789"
ROW = {"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "5", "ssn": SSN}


@pytest.fixture(autouse=True)
def _fresh_reveal_counts():
    cache.delete_pattern("atlas:reveals:*")


@pytest.fixture
def promoted(customers, land):
    land(customers, [ROW, {**ROW, "id": "2", "tier": "bronze"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    return customers


def clear_officers_for(level_name: str) -> None:
    level = ClassificationLevel.objects.get(name=level_name)
    Group.objects.get(name=COMPLIANCE_OFFICER).permissions.add(
        Permission.objects.get(codename=clearance_codename(level.pk))
    )


def test_a_cleared_officer_reveals_one_value_with_a_reason(client, promoted, officer):
    clear_officers_for("restricted")
    record = ChartRecord.objects.get(dataset=promoted)
    client.force_login(officer)
    page = client.get(reverse("admin:chart_chartrecord_change", args=[record.pk])).content.decode()
    assert SSN not in page and "[encrypted]" in page
    reveal_url = (
        reverse("admin:chart_chartrecord_reveal", args=[record.pk]) + "?part=value&field=ssn"
    )
    assert reveal_url.replace("&", "&amp;") in page
    form = client.get(reveal_url)
    assert form.status_code == 200 and SSN.encode() not in form.content
    refused = client.post(reveal_url, {"reason": "  "})
    assert refused.status_code == 400 and b"Say why" in refused.content
    shown = client.post(reveal_url, {"reason": "chargeback dispute 88"})
    assert shown.status_code == 200
    assert SSN.encode() in shown.content
    assert "no-store" in shown["Cache-Control"]
    entry = AuditLog.objects.filter(action=AuditAction.REVEAL, actor="officer").get()
    assert entry.detail == "revealed ssn (restricted); reason: chargeback dispute 88"
    assert entry.object_id == str(record.pk) and SSN not in str(entry.after)


def test_without_clearance_there_is_no_reveal_link_and_a_reveal_is_refused(
    client, promoted, steward
):
    record = ChartRecord.objects.get(dataset=promoted)
    client.force_login(steward)
    page = client.get(reverse("admin:chart_chartrecord_change", args=[record.pk])).content
    assert b"atlas-reveal-link" not in page
    reveal_url = (
        reverse("admin:chart_chartrecord_reveal", args=[record.pk]) + "?part=value&field=ssn"
    )
    assert client.get(reveal_url).status_code == 302  # back to the record, with a message
    refused = client.post(reveal_url, {"reason": "curious"})
    assert refused.status_code == 403 and SSN.encode() not in refused.content
    assert AuditLog.objects.filter(
        action=AuditAction.REVEAL, actor="steward", detail__startswith="refused"
    ).exists()


def test_there_is_no_bulk_reveal(superuser, rf):
    request = rf.get("/")
    request.user = superuser
    for model_admin in admin.site._registry.values():
        assert not any("reveal" in name for name in model_admin.get_actions(request))


def test_a_raw_records_restricted_field_is_masked_and_revealed_alone(client, promoted, superuser):
    raw = RawRecord.objects.filter(dataset=promoted).order_by("id").first()
    client.force_login(superuser)
    page = client.get(reverse("admin:explore_rawrecord_change", args=[raw.pk])).content.decode()
    assert SSN not in page  # restricted: never shown in clear, not even to a superuser
    assert "ada@example.com" in page  # confidential: a superuser is cleared
    url = reverse("admin:explore_rawrecord_reveal", args=[raw.pk]) + "?part=value&field=ssn"
    assert url.replace("&", "&amp;") in page
    assert SSN.encode() in client.post(url, {"reason": "audit sample"}).content


def test_a_steward_sees_internal_values_but_not_confidential_ones(client, promoted, steward):
    raw = RawRecord.objects.filter(dataset=promoted).order_by("id").first()
    client.force_login(steward)
    page = client.get(reverse("admin:explore_rawrecord_change", args=[raw.pk])).content.decode()
    assert "ada@example.com" not in page and "***************" in page  # full masking
    quarantined = QuarantinedRecord.objects.get(dataset=promoted)
    review = client.get(reverse("admin:chart_quarantinedrecord_change", args=[quarantined.pk]))
    assert b"ada@example.com" not in review.content and SSN.encode() not in review.content
    # A box left masked is no correction: saving the page changes nothing.
    boxes = {
        f"value:{name}": value
        for name, value in (
            ("email", "*" * len("ada@example.com")),
            ("ssn", "[REDACTED]"),
            ("tier", "bronze"),
        )
    }
    client.post(reverse("admin:chart_quarantinedrecord_correct", args=[quarantined.pk]), boxes)
    quarantined.refresh_from_db()
    assert quarantined.corrected_payload is None


# --- Datasets limited to groups -------------------------------------------------------------


RECORD_MODELS = {
    "explore_rawrecord": (RawRecord, "dataset"),
    "chart_chartrecord": (ChartRecord, "dataset"),
    "chart_quarantinedrecord": (QuarantinedRecord, "dataset"),
    "chart_piifinding": (PiiFinding, "dataset"),
    "explore_landingbatch": (LandingBatch, "dataset"),
    "quality_checkresult": (CheckResult, "run__dataset"),
}


def test_a_dataset_limited_to_a_group_shows_its_records_to_its_readers_only(
    client, customers, land, viewer, django_user_model
):
    land(customers, [{**ROW, "notes": "card 4111 1111 1111 1111"}, {**ROW, "tier": "x"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    readers = Group.objects.create(name="Orders readers")
    customers.reader_groups.add(readers)
    record = ChartRecord.objects.get(dataset=customers)
    assert PiiFinding.objects.filter(dataset=customers).exists()

    client.force_login(viewer)
    for name, (model, lookup) in RECORD_MODELS.items():
        ids = list(model.objects.filter(**{lookup: customers}).values_list("pk", flat=True))
        assert ids, name
        page = client.get(reverse(f"admin:{name}_changelist")).content.decode()
        for pk in ids:
            assert f"/{pk}/change/" not in page, name
    page = client.get(reverse("admin:chart_chartrecord_change", args=[record.pk]))
    assert page.status_code == 302  # "does not exist" for this reader
    exported = client.post(
        reverse("admin:chart_chartrecord_changelist"),
        {"action": "export_selected_as_csv", "select_across": "1", ACTION_CHECKBOX_NAME: ["0"]},
    )
    assert len(b"".join(exported.streaming_content).decode().strip().splitlines()) == 1  # header
    # The dataset itself is still listed.
    assert b"orders" in client.get(reverse("admin:pipeline_dataset_changelist")).content

    viewer.groups.add(readers)
    member = django_user_model.objects.get(pk=viewer.pk)
    client.force_login(member)
    assert (
        client.get(reverse("admin:chart_chartrecord_change", args=[record.pk])).status_code == 200
    )
    listed = client.get(reverse("admin:chart_chartrecord_changelist")).content
    assert f"chartrecord/{record.pk}/change/".encode() in listed


def test_a_limited_datasets_page_shows_counts_but_no_excerpt_to_others(
    client, customers, land, viewer
):
    land(customers, [{**ROW, "notes": "card 4111 1111 1111 1111"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    excerpt = PiiFinding.objects.get(dataset=customers).masked_excerpt
    client.force_login(viewer)
    url = reverse("admin:pipeline_dataset_change", args=[customers.pk])
    assert excerpt in client.get(url).content.decode()
    customers.reader_groups.add(Group.objects.create(name="Orders readers"))
    page = client.get(url).content.decode()
    assert excerpt not in page and "payment_card" in page


def test_a_cleared_officer_reveals_a_quarantined_records_value_with_a_reason(
    client, promoted, officer, steward
):
    # The second row (tier "bronze") is quarantined; its ssn is restricted.
    held = QuarantinedRecord.objects.get(dataset=promoted)
    page_url = reverse("admin:chart_quarantinedrecord_change", args=[held.pk])
    reveal_url = (
        reverse("admin:chart_quarantinedrecord_reveal", args=[held.pk]) + "?part=current&field=ssn"
    )
    client.force_login(steward)  # not cleared for restricted
    assert reveal_url.replace("&", "&amp;") not in client.get(page_url).content.decode()
    assert client.get(reveal_url).status_code == 302
    refused = client.post(reveal_url, {"reason": "curious"})
    assert refused.status_code == 403 and SSN.encode() not in refused.content

    clear_officers_for("restricted")
    client.force_login(officer)
    page = client.get(page_url).content.decode()
    assert SSN not in page and reveal_url.replace("&", "&amp;") in page
    form = client.get(reveal_url)
    assert form.status_code == 200 and SSN.encode() not in form.content
    assert client.post(reveal_url, {"reason": ""}).status_code == 400
    shown = client.post(reveal_url, {"reason": "fix the tier of order 2"})
    assert shown.status_code == 200 and SSN.encode() in shown.content
    assert "no-store" in shown["Cache-Control"]
    # Only encrypted values a re-processing will judge are revealed here; others are not.
    other = (
        reverse("admin:chart_quarantinedrecord_reveal", args=[held.pk]) + "?part=value&field=ssn"
    )
    assert client.get(other).status_code == 404
    entries = AuditLog.objects.filter(action=AuditAction.REVEAL, object_id=str(held.pk))
    assert [(entry.actor, entry.after["revealed"]) for entry in entries.order_by("id")] == [
        ("steward", False),
        ("officer", True),
    ]
    assert entries.get(actor="officer").detail == (
        "revealed ssn (restricted); reason: fix the tier of order 2"
    )
    assert SSN not in str(list(entries.values("after", "detail")))


def _export_chart_records(client) -> str:
    exported = client.post(
        reverse("admin:chart_chartrecord_changelist"),
        {"action": "export_selected_as_csv", "select_across": "1", ACTION_CHECKBOX_NAME: ["0"]},
    )
    assert exported.status_code == 200
    return b"".join(exported.streaming_content).decode()


def test_an_export_by_a_cleared_reader_says_which_clearances_in_the_audit_log(
    client, promoted, officer, viewer
):
    clear_officers_for("confidential")
    client.force_login(officer)
    exported = _export_chart_records(client)
    assert "ada@example.com" in exported  # confidential, and the officer is cleared
    assert SSN not in exported  # restricted values are revealed one at a time, never exported
    entry = AuditLog.objects.filter(actor="officer", object_type="chart.chartrecord").get()
    assert entry.after["clearance"] == ["internal", "confidential"]
    assert entry.detail == (
        "Exported as CSV: every row matching the list's filters. With clearance for "
        "internal, confidential: those levels' values in clear."
    )
    assert "ada@example.com" not in str(entry.after) + entry.detail

    client.force_login(viewer)
    assert "ada@example.com" not in _export_chart_records(client)
    entry = AuditLog.objects.filter(actor="viewer", object_type="chart.chartrecord").get()
    assert entry.after["clearance"] == []
    assert entry.detail.endswith("Without clearance: protected values masked.")


LIMITED_CANARY = "CNRYLIMITEDk3w8"


def test_a_limited_datasets_batches_are_its_readers_and_their_senders_only(
    client, customers, steward, superuser, viewer
):
    """The API's batch status, the upload page (recent batches, a batch's lines that did
    not parse, its status) and the batch's status in the admin; the dashboards show no
    record of any dataset, so a limited one's values are on none of them either."""
    content = (
        "id,email,tier,amount,ssn,signup,notes\n"
        f"1,ada@example.com,gold,5,123-45-6789,2026-01-02,{LIMITED_CANARY}\n"
        f'"{LIMITED_CANARY}-broken,line\n'
    )
    theirs = ingest.store_upload(
        dataset=customers,
        file=io.BytesIO(content.encode()),
        filename="payroll-theirs.csv",
        actor=superuser,
        via="cli",
    )
    ingest.load_batch(batch_id=theirs.pk, triggered_by="test")
    promote_to_chart(dataset=customers, triggered_by="test")
    assert RawRecord.objects.filter(batch=theirs, payload__isnull=True).exists()
    readers = Group.objects.create(name="Orders readers")
    customers.reader_groups.add(readers)
    ours = ingest.store_upload(
        dataset=customers,
        file=io.BytesIO(b"id,email\n2,bo@example.com\n"),
        filename="payroll-ours.csv",
        actor=steward,
        via="cli",
    )
    token = ingest.issue_api_token(user=steward, name="limited", actor=steward)[1]
    api = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    ingest_url = reverse("admin:pipeline_dataset_ingest", args=[customers.pk])
    client.force_login(steward)

    def seen(batch) -> dict[str, bool]:
        upload_page = client.get(f"{ingest_url}?batch={batch.pk}").content.decode()
        return {
            "api": client.get(f"/api/batches/{batch.pk}", **api).status_code == 200,
            "upload page": batch.original_name in upload_page,
            "recent batches": batch.original_name in client.get(ingest_url).content.decode(),
            "upload status": client.get(f"{ingest_url}{batch.pk}/status/").status_code == 200,
            "admin status": client.get(
                reverse("admin:explore_landingbatch_status", args=[batch.pk])
            ).status_code
            == 200,
        }

    everywhere = dict.fromkeys(["api", "upload page", "recent batches", "upload status"], True)
    assert seen(theirs) == {**dict.fromkeys(everywhere, False), "admin status": False}
    # The sender follows their own batch, though not a reader of the dataset.
    assert seen(ours) == {**everywhere, "admin status": False}
    steward.groups.add(readers)
    assert seen(theirs) == {**everywhere, "admin status": True}
    # A reader sees which lines did not parse, their text at the dataset's highest level
    # (restricted: masked for everyone).
    page = client.get(f"{ingest_url}?batch={theirs.pk}").content.decode()
    assert "Lines that could not be read" in page and LIMITED_CANARY not in page

    client.force_login(viewer)
    for name in ("overview", "quality", "compliance", "storage", "lineage"):
        page = client.get(reverse(f"dashboards:{name}")).content.decode()
        assert LIMITED_CANARY not in page and "payroll-" not in page, name
