"""Classification changes in the admin (a field's page, the dataset's contract inline, the
delete pages) go through the classification rules: a refusal is a form error, not an error
page; a lowering needs an officer's reason; every change is audited by level names."""

import pytest
from django.urls import reverse

from governance.compliance.models import AuditLog, ClassificationLevel
from governance.pipeline.models import Dataset, DatasetField

pytestmark = pytest.mark.django_db


def level(name: str) -> ClassificationLevel:
    return ClassificationLevel.objects.get(name=name)


def field_url(field: DatasetField, view: str = "change") -> str:
    return reverse(f"admin:pipeline_datasetfield_{view}", args=[field.pk])


def field_form(field: DatasetField, **overrides) -> dict:
    data = {
        "dataset": field.dataset_id,
        "name": field.name,
        "position": field.position,
        "data_type": field.data_type,
        "max_length": "",
        "allowed_values": ",".join(field.allowed_values),
        "pattern": field.pattern,
        "minimum": "",
        "maximum": "",
        "classification": field.classification_id or "",
        "description": field.description,
        "reason": "",
    }
    if field.required:
        data["required"] = "on"
    if field.unique:
        data["unique"] = "on"
    data.update(overrides)
    return data


def stored_level(field: DatasetField) -> str | None:
    field.refresh_from_db()
    return field.classification.name if field.classification else None


def classification_audits(field: DatasetField):
    return AuditLog.objects.filter(
        object_type="pipeline.datasetfield",
        object_id=str(field.pk),
        after__has_key="classification",
    )


def test_a_steward_lowering_gets_a_form_error(client, steward, customers):
    ssn = customers.fields.get(name="ssn")
    client.force_login(steward)
    response = client.post(
        field_url(ssn), field_form(ssn, classification=level("public").pk, reason="why not")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "compliance officer's decision" in errors["classification"][0]
    assert stored_level(ssn) == "restricted"


def test_a_steward_raising_is_saved_and_audited_by_names(client, steward, customers):
    notes = customers.fields.get(name="notes")
    client.force_login(steward)
    response = client.post(field_url(notes), field_form(notes, classification=level("internal").pk))
    assert response.status_code == 302
    assert stored_level(notes) == "internal"
    entry = classification_audits(notes).get()
    assert entry.actor == "steward" and entry.after == {"classification": "internal"}
    assert "unclassified → internal" in entry.detail


def test_an_officer_lowers_with_a_reason(client, officer, customers):
    ssn = customers.fields.get(name="ssn")
    client.force_login(officer)
    public = level("public").pk
    response = client.post(field_url(ssn), field_form(ssn, classification=public))
    assert response.status_code == 200
    assert "needs a reason" in response.context["adminform"].form.errors["reason"][0]
    assert stored_level(ssn) == "restricted"

    response = client.post(
        field_url(ssn), field_form(ssn, classification=public, reason="synthetic identifiers")
    )
    assert response.status_code == 302
    assert stored_level(ssn) == "public"
    entry = classification_audits(ssn).get()
    assert entry.actor == "officer"
    assert (entry.before, entry.after) == (
        {"classification": "restricted"},
        {"classification": "public"},
    )
    assert "restricted → public" in entry.detail and "synthetic identifiers" in entry.detail


def test_a_classified_field_is_not_deleted_from_its_own_page(client, superuser, customers):
    # Even by someone who may lower it: that page asks no reason.
    ssn = customers.fields.get(name="ssn")
    client.force_login(superuser)
    page = client.get(field_url(ssn, "delete")).content.decode()
    assert "orders.ssn is classified restricted: a compliance officer removes" in page
    response = client.post(field_url(ssn, "delete"), {"post": "yes"})
    assert response.status_code == 200
    assert DatasetField.objects.filter(pk=ssn.pk).exists()
    client.post(
        reverse("admin:pipeline_datasetfield_changelist"),
        {"action": "delete_selected", "_selected_action": [ssn.pk], "post": "yes"},
    )
    assert DatasetField.objects.filter(pk=ssn.pk).exists()
    # Once unclassified (an officer's decision, with a reason), it can be deleted.
    client.post(field_url(ssn), field_form(ssn, classification="", reason="no longer collected"))
    assert client.post(field_url(ssn, "delete"), {"post": "yes"}).status_code == 302
    assert not DatasetField.objects.filter(pk=ssn.pk).exists()


# --- The dataset's contract inline --------------------------------------------------------


def contract_form(dataset: Dataset, *, delete=(), reasons=None, levels=None) -> dict:
    fields = list(dataset.fields.order_by("position", "name"))
    data = {
        "slug": dataset.slug,
        "name": dataset.name,
        "description": "",
        "owner": "",
        "is_active": "on",
        "business_key": ",".join(dataset.business_key),
        "event_time_field": "",
        "quality_threshold": "0.95",
        "gate_action": "quarantine",
        "schedule": "",
        "auto_promote": "on",
        "freshness_target": "1 00:00:00",
        "fields-TOTAL_FORMS": str(len(fields)),
        "fields-INITIAL_FORMS": str(len(fields)),
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "1000",
    }
    for index, field in enumerate(fields):
        for key, value in field_form(field).items():
            if key not in ("description", "dataset"):
                data[f"fields-{index}-{key}"] = value
        data[f"fields-{index}-id"] = str(field.pk)
        data[f"fields-{index}-dataset"] = str(dataset.pk)
        if field.name in (levels or {}):
            data[f"fields-{index}-classification"] = levels[field.name]
        data[f"fields-{index}-reason"] = (reasons or {}).get(field.name, "")
        if field.name in delete:
            data[f"fields-{index}-DELETE"] = "on"
    return data


def dataset_url(dataset: Dataset) -> str:
    return reverse("admin:pipeline_dataset_change", args=[dataset.pk])


def test_a_steward_deleting_a_classified_field_inline_is_refused(client, steward, customers):
    client.force_login(steward)
    response = client.post(
        dataset_url(customers), contract_form(customers, delete=["ssn", "notes"])
    )
    assert response.status_code == 200
    errors = " ".join(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert "Removing orders.ssn (classified restricted) from the contract" in errors
    assert customers.fields.filter(name__in=["ssn", "notes"]).count() == 2


def test_removing_a_classified_field_inline_takes_a_reason(client, superuser, customers):
    # A superuser holds every permission, lowering classifications included.
    client.force_login(superuser)
    refused = client.post(dataset_url(customers), contract_form(customers, delete=["ssn"]))
    assert refused.status_code == 200
    assert customers.fields.filter(name="ssn").exists()
    response = client.post(
        dataset_url(customers),
        contract_form(customers, delete=["ssn"], reasons={"ssn": "no longer collected"}),
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    assert not customers.fields.filter(name="ssn").exists()
    entry = AuditLog.objects.get(object_type="pipeline.datasetfield", action="delete")
    assert entry.actor == superuser.username and entry.before["classification"] == "restricted"
    assert "no longer collected" in entry.detail


def test_inline_levels_go_through_the_rules(client, steward, customers):
    client.force_login(steward)
    public, restricted = level("public").pk, level("restricted").pk
    refused = client.post(
        dataset_url(customers), contract_form(customers, levels={"email": public})
    )
    assert refused.status_code == 200
    assert customers.fields.get(name="email").classification.name == "confidential"
    saved = client.post(
        dataset_url(customers), contract_form(customers, levels={"email": restricted})
    )
    assert saved.status_code == 302, saved.context and saved.context["errors"]
    email = customers.fields.get(name="email")
    assert email.classification.name == "restricted"
    entry = classification_audits(email).get()
    assert "confidential → restricted" in entry.detail and entry.actor == "steward"
