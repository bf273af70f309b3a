"""Classification suggestions count values that held PII, by type, and name each example's type."""

from chart.services import promote_to_chart
from governance.compliance.models import ClassificationSuggestion
from governance.pipeline.models import DatasetField


def test_the_hit_ratio_counts_values_holding_any_pii_with_counts_and_examples_by_type(
    customers, land
):
    DatasetField.objects.filter(dataset=customers, name="notes").update(classification=None)
    notes = (
        ["write to ann@example.com"] * 30  # email
        + ["call +1 415 555 0199"] * 25  # phone
        + ["card 4111 1111 1111 1111"] * 10  # payment card
        + ["ann@example.com or 4111 1111 1111 1111"] * 6  # two types in one value
        + ["no pii here"] * 29
    )
    land(
        customers,
        [
            {"id": str(n), "tier": "gold", "amount": "1.00", "signup": "2026-01-02", "notes": text}
            for n, text in enumerate(notes, start=1)
        ],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    suggestion = ClassificationSuggestion.objects.get(dataset_field__name="notes")

    # 71 of 100 values held PII: the ratio is 0.71, not the largest single type's share.
    assert (suggestion.values_with_pii, suggestion.values_scanned) == (71, run.rows_in) == (71, 100)
    assert suggestion.hit_ratio == 0.71
    assert suggestion.hits_by_type == {"email": 36, "phone": 25, "payment_card": 16}
    assert suggestion.pii_types == ["email", "payment_card", "phone"]
    examples = suggestion.examples_by_type()
    assert len(examples) == 5
    assert {pii_type for pii_type, _ in examples} == {"email", "payment_card", "phone"}
    assert all("4111 1111 1111 1111" not in excerpt for _, excerpt in examples)


def test_examples_stored_before_they_named_a_type_still_read():
    suggestion = ClassificationSuggestion(examples=["***@example.com"])
    assert suggestion.examples_by_type() == [("", "***@example.com")]


def test_many_kinds_each_under_the_threshold_together_raise_a_suggestion(customers, land):
    """Each type alone in fewer than 5% of the values, together in 9%: a suggestion."""
    DatasetField.objects.filter(dataset=customers, name="notes").update(classification=None)
    notes = (
        ["write to ann@example.com"] * 3
        + ["call +1 415 555 0199"] * 3
        + ["card 4111 1111 1111 1111"] * 3
        + ["nothing to see"] * 91
    )
    land(
        customers,
        [
            {"id": str(n), "tier": "gold", "amount": "1.00", "signup": "2026-01-02", "notes": text}
            for n, text in enumerate(notes, start=1)
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    suggestion = ClassificationSuggestion.objects.get(dataset_field__name="notes")
    assert max(suggestion.hits_by_type.values()) / suggestion.values_scanned < 0.05
    assert suggestion.hit_ratio == 0.09
