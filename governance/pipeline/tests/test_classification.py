"""Classification changes: raising is open to stewards; lowering, removing a classified field
or accepting a suggestion below the current level needs a compliance officer and a reason;
every change is audited by level names. Through the service, contract import and the CLI."""

import pytest
import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from chart.services import promote_to_chart
from governance.compliance.models import AuditLog, ClassificationLevel, ClassificationSuggestion
from governance.pipeline.classification import (
    accept_suggestion,
    change_field_classification,
    remove_dataset_field,
)
from governance.pipeline.contracts import ContractError, export_contract, import_contract
from governance.pipeline.models import Dataset, DatasetField, RunKind

pytestmark = pytest.mark.django_db


def level(name: str) -> ClassificationLevel:
    return ClassificationLevel.objects.get(name=name)


def field_of(dataset, name: str) -> DatasetField:
    return DatasetField.objects.select_related("classification").get(dataset=dataset, name=name)


def field_audits(field: DatasetField):
    return AuditLog.objects.filter(
        object_type="pipeline.datasetfield", object_id=str(field.pk)
    ).order_by("id")


def test_a_steward_may_raise_a_level(customers, steward):
    notes = field_of(customers, "notes")
    change = change_field_classification(field=notes, level=level("confidential"), actor=steward)
    assert change.levels == "unclassified → confidential" and not change.lowered
    assert field_of(customers, "notes").classification.name == "confidential"
    entry = field_audits(notes).last()
    assert entry.actor == "steward" and entry.object_repr == "orders.notes"
    assert (entry.before, entry.after) == (
        {"classification": "unclassified"},
        {"classification": "confidential"},
    )
    assert "raised the classification of orders.notes: unclassified → confidential" in (
        entry.detail
    )


def test_a_steward_may_not_lower_a_level(customers, steward):
    ssn = field_of(customers, "ssn")
    with pytest.raises(PermissionDenied) as refused:
        change_field_classification(
            field=ssn, level=level("public"), actor=steward, reason="I think it is fine"
        )
    assert str(refused.value) == (
        "Lowering orders.ssn from restricted to public is a compliance officer's decision: it "
        "needs the permission “Can lower or remove a field's classification” and a reason."
    )
    with pytest.raises(PermissionDenied, match="from restricted to unclassified"):
        change_field_classification(field=ssn, level=None, actor=steward)
    assert field_of(customers, "ssn").classification.name == "restricted"
    assert not field_audits(ssn).exists()


def test_an_officer_lowers_with_a_reason_audited_by_level_names(customers, officer):
    ssn = field_of(customers, "ssn")
    with pytest.raises(ValidationError, match="needs a reason"):
        change_field_classification(field=ssn, level=level("public"), actor=officer, reason=" ")
    assert field_of(customers, "ssn").classification.name == "restricted"

    change_field_classification(
        field=ssn, level=level("public"), actor=officer, reason="synthetic test identifiers"
    )
    assert field_of(customers, "ssn").classification.name == "public"
    entry = field_audits(ssn).get()
    assert entry.actor == "officer" and entry.actor_id == officer.pk
    assert entry.object_repr == "orders.ssn"
    assert entry.before == {"classification": "restricted"}
    assert entry.after == {"classification": "public"}
    assert entry.detail == (
        "lowered the classification of orders.ssn: restricted → public; "
        "reason: synthetic test identifiers"
    )


def test_a_system_actor_never_lowers(customers):
    with pytest.raises(PermissionDenied, match="compliance officer's decision"):
        change_field_classification(
            field=field_of(customers, "email"), level=None, actor="a script", reason="because"
        )


def test_removing_a_classified_field_is_a_lowering(customers, steward, officer):
    ssn, notes = field_of(customers, "ssn"), field_of(customers, "notes")
    with pytest.raises(PermissionDenied, match=r"Removing orders\.ssn \(classified restricted\)"):
        remove_dataset_field(field=ssn, actor=steward, reason="not needed")
    with pytest.raises(ValidationError, match="needs a reason"):
        remove_dataset_field(field=ssn, actor=officer)
    remove_dataset_field(field=notes, actor=steward)  # unclassified: a steward's call
    remove_dataset_field(field=ssn, actor=officer, reason="no longer collected")
    assert not DatasetField.objects.filter(pk__in=[ssn.pk, notes.pk]).exists()
    entry = AuditLog.objects.get(object_type="pipeline.datasetfield", object_id=str(ssn.pk))
    assert entry.action == "delete" and entry.before["classification"] == "restricted"
    assert "restricted → unclassified" in entry.detail and "no longer collected" in entry.detail


def test_a_change_of_an_unpromoted_dataset_queues_no_run(customers, officer):
    change = change_field_classification(
        field=field_of(customers, "ssn"), level=level("public"), actor=officer, reason="test"
    )
    assert change.reprotect_run is None  # chart holds nothing of it yet


# --- Suggestions ---------------------------------------------------------------------------


@pytest.fixture
def suggestion(customers, land):
    land(customers, [{"id": str(i), "notes": f"card 4111 1111 1111 1111 ref {i}"} for i in (1, 2)])
    promote_to_chart(dataset=customers, triggered_by="test")
    return ClassificationSuggestion.objects.get(dataset_field__name="notes", status="open")


def test_accepting_a_suggestion_below_the_current_level_needs_an_officer(
    suggestion, customers, steward, officer
):
    notes = field_of(customers, "notes")
    # Meanwhile someone classified the field restricted; the suggestion says confidential.
    change_field_classification(field=notes, level=level("restricted"), actor=steward)
    with pytest.raises(PermissionDenied, match="from restricted to confidential"):
        accept_suggestion(suggestion, actor=steward, level=level("confidential"))
    with pytest.raises(ValidationError, match="needs a reason"):
        accept_suggestion(suggestion, actor=officer, level=level("confidential"))
    suggestion.refresh_from_db()
    assert suggestion.status == "open"
    assert field_of(customers, "notes").classification.name == "restricted"

    accept_suggestion(
        suggestion, actor=officer, level=level("confidential"), reason="cards are test data"
    )
    assert field_of(customers, "notes").classification.name == "confidential"
    entry = field_audits(notes).last()
    assert "restricted → confidential" in entry.detail
    assert "cards are test data" in entry.detail and f"suggestion {suggestion.pk}" in entry.detail
    # Chart holds notes' values: re-protection is queued.
    assert entry.after == {"classification": "confidential"}
    assert customers.runs.filter(kind=RunKind.REPROTECT).exists()


def test_accepting_at_or_above_the_current_level_is_a_stewards_call(suggestion, steward):
    accept_suggestion(suggestion, actor=steward)
    suggestion.refresh_from_db()
    assert suggestion.status == "accepted"
    assert suggestion.dataset_field.classification == suggestion.suggested_level


# --- Contract import -----------------------------------------------------------------------


def lowered_contract(dataset, **levels) -> dict:
    contract = export_contract(Dataset.objects.get(pk=dataset.pk))  # as stored
    for item in contract["fields"]:
        if item["name"] in levels:
            item["classification"] = levels[item["name"]]
    return contract


def test_a_reimport_that_lowers_or_removes_is_refused_with_where(customers, steward):
    contract = lowered_contract(customers, ssn="public")
    contract["fields"] = [item for item in contract["fields"] if item["name"] != "email"]
    with pytest.raises(ContractError) as refused:
        import_contract(data=contract, actor=steward, reason="cleanup")
    assert refused.value.errors == [
        "fields[3].classification: Lowering orders.ssn from restricted to public is a "
        "compliance officer's decision: it needs the permission “Can lower or remove a field's "
        "classification” and a reason.",
        "fields: 'email' is not in the file: Removing orders.email (classified confidential) "
        "from the contract is a compliance officer's decision: it needs the permission “Can "
        "lower or remove a field's classification” and a reason.",
    ]
    assert field_of(customers, "ssn").classification.name == "restricted"
    assert DatasetField.objects.filter(dataset=customers, name="email").exists()


def test_an_officer_reimports_a_lowering_with_a_reason(customers, officer):
    contract = lowered_contract(customers, ssn="public")
    with pytest.raises(ContractError, match="needs a reason"):
        import_contract(data=contract, actor=officer)
    result = import_contract(data=contract, actor=officer, reason="test data only")
    assert result.fields_changed == ["ssn"]
    assert field_of(customers, "ssn").classification.name == "public"
    entry = field_audits(field_of(customers, "ssn")).last()
    assert "restricted → public" in entry.detail and "test data only" in entry.detail
    assert "contract imported" in entry.detail


def test_the_command_takes_a_user_and_a_reason(customers, officer, tmp_path):
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(lowered_contract(customers, email="internal")))
    with pytest.raises(CommandError) as refused:
        call_command("import_contract", str(path))
    assert "fields[1].classification: Lowering orders.email from confidential to internal" in (
        str(refused.value)
    )
    assert "nothing was written" in str(refused.value)
    call_command(
        "import_contract", str(path), "--user", "officer", "--reason", "emails are hashed upstream"
    )
    assert field_of(customers, "email").classification.name == "internal"


# --- Classification levels -----------------------------------------------------------------


def test_a_level_that_stops_encrypting_queues_reprotection_of_its_datasets(
    client, superuser, customers, land
):
    land(customers, [{"id": "1", "ssn": "REF-1"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    restricted = level("restricted")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:compliance_classificationlevel_change", args=[restricted.pk]),
        {
            "name": "restricted",
            "rank": restricted.rank,
            "description": restricted.description,
            "masking": restricted.masking,
        },  # requires_encryption unticked
        follow=True,
    )
    assert response.status_code == 200
    run = customers.runs.get(kind=RunKind.REPROTECT)
    assert "level restricted: no longer encrypted" in run.detail["reasons"][0]
    assert f"run {run.pk} (orders)" in response.content.decode()
