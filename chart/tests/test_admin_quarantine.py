"""The quarantine review pages: filters, the record's page, its actions, permissions."""

import pytest
from django.urls import reverse

from chart.models import ChartRecord, QuarantinedRecord, QuarantineStatus
from chart.services import promote_to_chart
from governance.compliance.models import AuditLog

GOOD = {"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "10.50"}


def row(**changes):
    return {**GOOD, **changes}


@pytest.fixture
def quarantine(customers, land):
    raws = land(
        customers,
        [row(id="1"), row(id="2", tier="bronze"), row(id="3", amount="-5"), "{broken"],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    records = {q.raw_record_id: q for q in QuarantinedRecord.objects.filter(run=run)}
    return run, [records[raw.pk] for raw in raws[1:]]


def page(pk, name="change"):
    return reverse(f"admin:chart_quarantinedrecord_{name}", args=[pk])


def listed(client, query: str) -> set[int]:
    response = client.get(reverse("admin:chart_quarantinedrecord_changelist") + query)
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def test_the_list_filters_by_field_reason_run_and_dataset(client, steward, customers, quarantine):
    run, (bad_tier, bad_amount, broken) = quarantine
    client.force_login(steward)
    assert listed(client, "?field=tier") == {bad_tier.pk}
    assert listed(client, "?rule=range") == {bad_amount.pk}
    assert listed(client, "?rule=parse") == {broken.pk}
    assert listed(client, "?field=tier&rule=range") == set()
    assert listed(client, f"?run={run.pk}") == {bad_tier.pk, bad_amount.pk, broken.pk}
    assert listed(client, f"?dataset__id__exact={customers.pk}&status__exact=open") == {
        bad_tier.pk,
        bad_amount.pk,
        broken.pk,
    }
    response = client.get(reverse("admin:chart_quarantinedrecord_changelist"))
    # Choices from the contract and recent runs; the reasons column is shown.
    assert b"tier: allowed_values" in response.content
    assert f"?run={run.pk}".encode() in response.content


def test_the_record_page_shows_the_raw_record_next_to_its_reasons(client, steward, quarantine):
    _, (bad_tier, _, broken) = quarantine
    client.force_login(steward)
    response = client.get(page(bad_tier.pk))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Raw record as received" in content
    assert "bronze" in content  # the raw text
    assert "allowed_values" in content
    assert 'name="value:tier"' in content
    assert "Re-process now" in content
    assert "<script>" not in content  # nothing inline (strict CSP)

    response = client.get(page(broken.pk))
    assert b"Could not be parsed" in response.content


def test_a_steward_corrects_and_reprocesses_from_the_page(client, steward, quarantine):
    _, (bad_tier, *_) = quarantine
    client.force_login(steward)
    response = client.post(
        page(bad_tier.pk, "correct"),
        # Untouched boxes are sent too; only the changed value is a correction.
        {"value:tier": "silver", "value:id": "2", "value:amount": "10.50"},
    )
    assert response.status_code == 302
    bad_tier.refresh_from_db()
    assert bad_tier.corrected_payload["tier"] == "silver"
    assert bad_tier.corrected_payload["id"] == "2"

    response = client.post(page(bad_tier.pk, "reprocess"), follow=True)
    assert b"1 promoted to chart" in response.content
    bad_tier.refresh_from_db()
    assert bad_tier.status == QuarantineStatus.REPROCESSED
    assert ChartRecord.objects.get(pk=bad_tier.chart_record_id).data["tier"] == "silver"
    assert b"chart record" in client.get(page(bad_tier.pk)).content


def test_dismissing_from_the_page_needs_a_reason(client, steward, quarantine):
    _, (_, bad_amount, _) = quarantine
    client.force_login(steward)
    response = client.post(page(bad_amount.pk, "dismiss"), {"reason": ""}, follow=True)
    assert b"reason is required" in response.content
    bad_amount.refresh_from_db()
    assert bad_amount.status == QuarantineStatus.OPEN
    client.post(page(bad_amount.pk, "dismiss"), {"reason": "duplicate test row"})
    bad_amount.refresh_from_db()
    assert (bad_amount.status, bad_amount.resolution_note) == ("dismissed", "duplicate test row")


def test_the_actions_reprocess_and_dismiss_the_selection(client, steward, quarantine):
    _, (bad_tier, bad_amount, broken) = quarantine
    client.force_login(steward)
    changelist = reverse("admin:chart_quarantinedrecord_changelist")
    response = client.post(
        changelist,
        {"action": "reprocess_selected", "index": 0, "_selected_action": [bad_tier.pk]},
        follow=True,
    )
    assert b"0 promoted to chart, 1 still quarantined" in response.content

    # Dismissing asks for the reason first.
    chosen = {
        "action": "dismiss_selected",
        "index": 0,
        "_selected_action": [bad_amount.pk, broken.pk],
    }
    response = client.post(changelist, chosen)
    assert response.status_code == 200
    assert b"Reason" in response.content
    response = client.post(changelist, {**chosen, "apply": "1", "reason": ""})
    assert response.status_code == 200  # shown again: the reason is required
    assert QuarantinedRecord.objects.filter(status="dismissed").count() == 0
    response = client.post(changelist, {**chosen, "apply": "1", "reason": "junk rows"}, follow=True)
    assert b"Dismissed 2 record(s)" in response.content
    assert QuarantinedRecord.objects.filter(status="dismissed").count() == 2
    assert AuditLog.objects.filter(detail="dismissed from quarantine").count() == 2


def test_a_viewer_sees_the_record_but_may_not_act(client, viewer, quarantine):
    _, (bad_tier, *_) = quarantine
    client.force_login(viewer)
    response = client.get(page(bad_tier.pk))
    assert response.status_code == 200
    assert b"Re-process now" not in response.content
    assert b'name="value:tier"' not in response.content
    for name, data in (
        ("correct", {"value:tier": "silver"}),
        ("reprocess", {}),
        ("dismiss", {"reason": "no"}),
    ):
        assert client.post(page(bad_tier.pk, name), data).status_code == 403
    assert client.get(page(bad_tier.pk, "reprocess")).status_code == 405
    bad_tier.refresh_from_db()
    assert bad_tier.status == QuarantineStatus.OPEN and bad_tier.corrected_payload is None
    assert (
        b"reprocess_selected"
        not in client.get(reverse("admin:chart_quarantinedrecord_changelist")).content
    )


@pytest.mark.django_db
def test_chart_records_filter_by_a_typed_run_id(client, superuser, customers, land):
    land(customers, [{"id": 1, "email": "a@example.com", "tier": "gold"}])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    client.force_login(superuser)
    url = reverse("admin:chart_chartrecord_changelist")

    listed = client.get(url, {"run": str(run.pk)})
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == ChartRecord.objects.filter(run=run).count() == 1
    assert client.get(url, {"run": str(run.pk + 1000)}).context["cl"].result_count == 0
    refused = client.get(url, {"run": "abc"}, follow=True)
    assert "is not an id" in refused.content.decode()


def test_open_records_are_grouped_by_reason_and_a_group_fixed_at_once(
    client, steward, customers, land
):
    """Three records with the tier 'bronze' (not allowed), one with 'iron': one fix maps
    bronze to silver for the group, audited record by record, then re-processed."""
    land(
        customers,
        [row(id=str(n), tier="bronze") for n in range(1, 4)] + [row(id="4", tier="iron")],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    client.force_login(steward)
    changelist = reverse("admin:chart_quarantinedrecord_changelist")
    html = client.get(changelist).content.decode()
    assert 'id="quarantine-groups"' in html
    assert "?status__exact=open&amp;field=tier&amp;rule=allowed_values" in html
    assert ">4</a>" in html  # four open records share that reason

    selected = list(QuarantinedRecord.objects.values_list("pk", flat=True))
    chosen = {"action": "correct_selected", "index": 0, "_selected_action": selected}
    assert b"Set it to" in client.post(changelist, chosen).content  # the form first
    done = client.post(
        changelist,
        {**chosen, "apply": "1", "field": "tier", "only_where": "bronze", "value": "silver"},
        follow=True,
    )
    assert b"Corrected tier in 3 record(s)." in done.content
    assert b"3 promoted to chart" in done.content
    assert QuarantinedRecord.objects.filter(status=QuarantineStatus.OPEN).count() == 1  # iron
    assert ChartRecord.objects.filter(dataset=customers).count() == 3
    corrections = AuditLog.objects.filter(object_type="chart.quarantinedrecord", action="update")
    assert corrections.count() >= 3
