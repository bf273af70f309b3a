"""Classification suggestions in the admin: their evidence, accepted or rejected from the
list's actions or the suggestion's page, through the audited services."""

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from chart.services import promote_to_chart
from governance.compliance.models import AuditLog, ClassificationLevel, ClassificationSuggestion

CHANGELIST = "admin:compliance_classificationsuggestion_changelist"


@pytest.fixture
def suggestion(customers, land):
    land(
        customers,
        [{"id": str(i), "notes": f"card 4111 1111 1111 1111 ref {i}"} for i in range(1, 4)],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    return ClassificationSuggestion.objects.get(dataset_field__name="notes")


def change_url(suggestion) -> str:
    return reverse("admin:compliance_classificationsuggestion_change", args=[suggestion.pk])


def decide_url(suggestion) -> str:
    return reverse("admin:compliance_classificationsuggestion_decide", args=[suggestion.pk])


def audits(object_type: str):
    return AuditLog.objects.filter(object_type=object_type).order_by("id")


@pytest.mark.django_db
def test_the_page_shows_the_evidence_masked_and_the_decision_buttons(client, steward, suggestion):
    client.force_login(steward)
    html = client.get(change_url(suggestion)).content.decode()
    assert "payment_card" in html
    assert "100.0%" in html  # three values of three
    assert "4111 1111 1111 1111" not in html
    [(pii_type, excerpt), *_] = suggestion.examples_by_type()
    assert pii_type == "payment_card" and excerpt in html.replace("&#x27;", "'")
    assert f'<span class="pii-type">{pii_type}</span>' in html
    assert "payment_card (3)" in html  # values holding the type
    assert 'id="accept-suggestion"' in html and 'id="reject-suggestion"' in html
    listing = client.get(reverse(CHANGELIST)).content.decode()
    assert "Accept selected suggestions" in listing and "Reject selected suggestions" in listing


@pytest.mark.django_db
def test_accepting_on_the_page_classifies_the_field_audited(client, officer, suggestion):
    client.force_login(officer)
    internal = ClassificationLevel.objects.get(name="internal")
    response = client.post(decide_url(suggestion), {"decision": "accept", "level": internal.pk})
    assert response.status_code == 302
    suggestion.refresh_from_db()
    assert suggestion.status == "accepted" and suggestion.decided_by == "officer"
    assert suggestion.dataset_field.classification == internal
    assert audits("pipeline.datasetfield").last().actor == "officer"
    assert audits("compliance.classificationsuggestion").last().after["status"] == "accepted"
    html = client.get(change_url(suggestion)).content.decode()
    assert 'id="suggestion-decided"' in html and 'id="accept-suggestion"' not in html
    # Deciding twice is refused with the reason.
    again = {"decision": "reject", "reason": "x"}
    response = client.post(decide_url(suggestion), again, follow=True)
    assert "already accepted by officer" in response.content.decode()


@pytest.mark.django_db
def test_a_rejection_on_the_page_needs_a_reason(client, steward, suggestion):
    client.force_login(steward)
    response = client.post(decide_url(suggestion), {"decision": "reject"}, follow=True)
    html = response.content.decode()
    # Named by its field, without the suggestion's question mark before the colon.
    assert f"Field {suggestion.dataset_field}: Say why the suggestion is rejected" in html
    assert "?:" not in html
    # The decision comes first on the page, before the evidence.
    assert html.index('id="suggestion-decision"') < html.index('id="classificationsuggestion_form"')
    suggestion.refresh_from_db()
    assert suggestion.status == "open"
    page = client.post(
        decide_url(suggestion), {"decision": "reject", "reason": "test cards only"}, follow=True
    ).content.decode()
    suggestion.refresh_from_db()
    assert suggestion.status == "rejected"
    assert suggestion.dataset_field.classification is None
    assert audits("compliance.classificationsuggestion").last().detail == "test cards only"
    # The page says who rejected it, and why.
    assert "by steward on" in page and "“test cards only”" in page


@pytest.mark.django_db
def test_the_accept_action_accepts_each_selected_one(client, steward, suggestion):
    client.force_login(steward)
    response = client.post(
        reverse(CHANGELIST),
        {"action": "accept_selected", helpers.ACTION_CHECKBOX_NAME: [suggestion.pk]},
        follow=True,
    )
    assert "1 suggestion(s) accepted" in response.content.decode()
    suggestion.refresh_from_db()
    assert suggestion.status == "accepted"
    assert suggestion.dataset_field.classification == suggestion.suggested_level


@pytest.mark.django_db
def test_the_reject_action_asks_for_the_reason_first(client, steward, suggestion):
    client.force_login(steward)
    selected = {"action": "reject_selected", helpers.ACTION_CHECKBOX_NAME: [suggestion.pk]}
    page = client.post(reverse(CHANGELIST), selected)
    assert page.status_code == 200
    assert "Reject 1 suggestion(s)" in page.content.decode()
    suggestion.refresh_from_db()
    assert suggestion.status == "open"
    empty = client.post(reverse(CHANGELIST), {**selected, "reason": ""})
    assert "This field is required" in empty.content.decode()
    done = client.post(reverse(CHANGELIST), {**selected, "reason": "synthetic data"}, follow=True)
    assert "1 suggestion(s) rejected" in done.content.decode()
    suggestion.refresh_from_db()
    assert suggestion.status == "rejected"


@pytest.mark.django_db
def test_a_viewer_sees_suggestions_but_cannot_decide(client, viewer, suggestion):
    client.force_login(viewer)
    html = client.get(change_url(suggestion)).content.decode()
    assert "payment_card" in html and 'id="accept-suggestion"' not in html
    assert client.post(decide_url(suggestion), {"decision": "accept"}).status_code == 403
    listing = client.get(reverse(CHANGELIST)).content.decode()
    assert "Accept selected suggestions" not in listing
    suggestion.refresh_from_db()
    assert suggestion.status == "open"
