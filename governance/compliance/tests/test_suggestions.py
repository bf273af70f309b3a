"""Classification suggestions: accepted ones classify, rejected ones stay quiet."""

import pytest
from django.core.exceptions import ValidationError

from chart.models import ChartRecord
from chart.services import promote_to_chart
from governance.compliance.models import AuditLog, ClassificationSuggestion
from governance.pipeline.classification import accept_suggestion, reject_suggestion


def card_notes(count, start=1):
    return [
        {"id": str(i), "notes": f"card 4111 1111 1111 1111 ref {i}"}
        for i in range(start, start + count)
    ]


@pytest.fixture
def suggestion(customers, land):
    land(customers, card_notes(3))
    promote_to_chart(dataset=customers, triggered_by="test")
    return ClassificationSuggestion.objects.get(dataset_field__name="notes")


def test_accepting_classifies_the_field_and_the_next_run_protects_it(
    suggestion, customers, land, officer
):
    accept_suggestion(suggestion, actor=officer)
    field = customers.fields.get(name="notes")
    assert field.classification.name == "restricted"
    assert AuditLog.objects.filter(object_type="pipeline.datasetfield", actor="officer").exists()
    land(customers, card_notes(1, start=10))
    run = promote_to_chart(dataset=customers, triggered_by="test")
    record = ChartRecord.objects.get(run=run)
    assert record.data["notes"].startswith("enc:v1:")
    with pytest.raises(ValidationError, match="already accepted by officer"):
        accept_suggestion(suggestion, actor=officer)


def test_a_rejection_needs_a_reason_and_is_not_raised_again(suggestion, customers, land, steward):
    with pytest.raises(ValidationError, match="Say why"):
        reject_suggestion(suggestion, actor=steward, reason=" ")
    reject_suggestion(suggestion, actor=steward, reason="test card numbers only")
    land(customers, card_notes(3, start=20))
    promote_to_chart(dataset=customers, triggered_by="test")
    assert not ClassificationSuggestion.objects.filter(status="open").exists()


def test_a_rejection_is_raised_again_when_the_evidence_changes(
    suggestion, customers, land, steward
):
    reject_suggestion(suggestion, actor=steward, reason="test cards")
    land(
        customers,
        [{"id": str(i), "notes": f"mail ada{i}@example.com"} for i in range(30, 33)],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    reopened = ClassificationSuggestion.objects.get(status="open")
    assert reopened.pii_types == ["email"]
