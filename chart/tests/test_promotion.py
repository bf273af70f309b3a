"""explore → chart: contract, gate, PII protection, supersession, counts, idempotence."""

from decimal import Decimal

import pytest

from chart.evaluation import sealed_context
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from chart.services import promote_to_chart
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import ClassificationSuggestion
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import (
    DatasetField,
    GateAction,
    Layer,
    LineageEdge,
    RunStatus,
    Watermark,
)
from governance.quality.models import CheckResult, QualityRule, QualityScore

GOOD = {
    "id": "1",
    "email": "ada@example.com",
    "tier": "gold",
    "amount": "10.50",
    "ssn": "123-45-6789",
    "signup": "2026-01-02",
    "notes": "call me",
}


def row(**changes):
    return {**GOOD, **changes}


def test_good_records_are_typed_and_protected(customers, land):
    land(customers, [row(), row(id="2", email="bob@example.org", tier="silver")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (2, 2, 0)
    record = ChartRecord.objects.get(business_key="1")
    assert record.data["id"] == 1
    assert record.data["amount"] == "10.50"
    assert record.data["signup"] == "2026-01-02"
    # Confidential is kept typed (masking is for readers without clearance); restricted
    # is encrypted, decrypts with the key, and has a keyed token for equality.
    assert record.data["email"] == "ada@example.com"
    assert record.data["ssn"].startswith("enc:v1:")
    assert record.tokens["ssn"] == TokenKeyring.from_settings().token("123-45-6789")
    assert "123-45-6789" not in str(record.tokens) and record.protection_version == 2
    assert (
        Keyring.from_settings().decrypt(
            record.data["ssn"], context=field_context(customers.pk, "ssn")
        )
        == "123-45-6789"
    )


def test_records_in_equal_promoted_plus_quarantined(customers, land):
    land(
        customers,
        [
            row(),
            row(id="x"),  # not an integer
            row(id="3", tier="bronze", amount="-1"),  # two reasons
            "{broken json",
            row(id="4", email=""),
        ],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED
    assert run.rows_in == 5
    assert run.rows_promoted + run.rows_quarantined == run.rows_in
    assert (run.rows_promoted, run.rows_quarantined) == (2, 3)
    reasons = {
        q.raw_record_id: {(r["field"], r["rule"]) for r in q.reasons}
        for q in QuarantinedRecord.objects.filter(run=run)
    }
    assert {("tier", "allowed_values"), ("amount", "range")} in reasons.values()
    assert {("", "parse")} in reasons.values()
    assert {("id", "type")} in reasons.values()


def test_rerun_promotes_nothing_twice(customers, land):
    land(customers, [row(), row(id="2")])
    promote_to_chart(dataset=customers, triggered_by="test")
    again = promote_to_chart(dataset=customers, triggered_by="test")
    assert again.status == RunStatus.SUCCEEDED
    assert again.rows_in == 0
    assert ChartRecord.objects.filter(dataset=customers).count() == 2
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position > 0


def test_later_record_supersedes_earlier_with_same_key(customers, land):
    land(customers, [row(amount="1")])
    promote_to_chart(dataset=customers, triggered_by="test")
    land(customers, [row(amount="2"), row(amount="3")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    current = ChartRecord.objects.filter(dataset=customers, business_key="1", is_current=True)
    assert [r.data["amount"] for r in current] == ["3"]
    older = ChartRecord.objects.filter(dataset=customers, business_key="1", is_current=False)
    assert older.count() == 2
    assert all(r.superseded_by_id for r in older)
    assert run.detail["superseded"] == 2


def test_warn_gate_promotes_failing_rows_with_their_issues(customers, land):
    customers.gate_action = GateAction.WARN
    customers.save()
    land(customers, [row(tier="bronze")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert (run.rows_promoted, run.rows_quarantined) == (1, 0)
    record = ChartRecord.objects.get(run=run)
    assert record.issues[0]["rule"] == "allowed_values"
    assert record.data["tier"] is None


def test_fail_gate_promotes_nothing_of_the_run(customers, land):
    customers.gate_action = GateAction.FAIL
    customers.save()
    land(customers, [row(), row(id="2", tier="bronze")])
    run = promote_to_chart(dataset=customers, triggered_by="test", chunk_size=1)
    assert run.status == RunStatus.FAILED
    assert "gate is 'fail'" in run.error
    assert not ChartRecord.objects.filter(dataset=customers).exists()
    assert not QuarantinedRecord.objects.filter(dataset=customers).exists()
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (0, 0, 0)
    watermark = Watermark.objects.filter(dataset=customers, layer=Layer.CHART).first()
    assert watermark is None or watermark.position == 0


def test_quality_results_and_score_keep_their_weights(customers, land):
    land(customers, [row(), row(id="2", tier="bronze"), row(id="3", email="")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    tier_rule = QualityRule.objects.get(dataset=customers, field_name="tier", kind="allowed_values")
    result = CheckResult.objects.get(run=run, rule=tier_rule)
    assert (result.passed_count, result.failed_count) == (2, 1)
    assert result.failing_examples[0]["value_excerpt"] == "bronze"
    score = QualityScore.objects.get(run=run)
    assert Decimal(score.dimension_scores["validity"]) < 1
    assert sum(Decimal(w) for w in score.weights_used.values()) == 1
    assert score.overall is not None


def test_pii_in_unclassified_field_is_tagged_sealed_found_and_suggested(customers, land):
    land(
        customers,
        [row(id=str(i), notes=f"card 4111 1111 1111 1111 from user{i}") for i in range(1, 4)],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    record = ChartRecord.objects.filter(run=run).order_by("id").first()
    # The card is replaced by its type; the words around it stay; the original is sealed.
    assert record.data["notes"] == "card <payment_card> from user1"
    original = Keyring.from_settings().decrypt(
        record.sealed["data"]["notes"], context=sealed_context(customers.pk, "notes")
    )
    assert original == "card 4111 1111 1111 1111 from user1"
    assert "4111" not in str(record.sealed) and "notes" in record.tokens
    findings = PiiFinding.objects.filter(run=run, field_name="notes")
    assert findings.count() == 3
    assert all("4111 1111 1111 1111" not in f.masked_excerpt for f in findings)
    # Each finding keeps where the PII sat in the value as received.
    assert {(f.span_start, f.span_end) for f in findings} == {(5, 24)}
    assert {f.pii_type for f in findings} == {"payment_card"}
    suggestion = ClassificationSuggestion.objects.get(dataset_field__name="notes")
    assert suggestion.pii_types == ["payment_card"]
    assert suggestion.suggested_level.name == "restricted"
    assert suggestion.hit_ratio == 1.0


def test_phone_numbers_are_read_as_the_declared_countrys(customers, land):
    """A Danish number written the Danish way is no phone number of ATLAS_PHONE_REGIONS'
    countries; in a dataset (or a field) declared Danish it is one."""
    text = "ring 32 12 34 56 i aften"
    land(customers, [row(id="1", notes=text)])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert not PiiFinding.objects.filter(run=run, pii_type="phone").exists()

    customers.country = "DK"
    customers.save()
    land(customers, [row(id="2", notes=text)])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    (finding,) = PiiFinding.objects.filter(run=run, pii_type="phone")
    assert text[finding.span_start : finding.span_end] == "32 12 34 56"

    # A field's own country wins over its dataset's.
    DatasetField.objects.filter(dataset=customers, name="notes").update(country="NL")
    land(customers, [row(id="3", notes=text)])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert not PiiFinding.objects.filter(run=run, pii_type="phone").exists()


def test_lineage_names_each_fields_transform(customers, land):
    land(customers, [row()])
    promote_to_chart(dataset=customers, triggered_by="test")
    transforms = dict(
        LineageEdge.objects.filter(dataset=customers, target_layer=Layer.CHART).values_list(
            "source_field", "transform"
        )
    )
    assert transforms["ssn"] == "encrypted"
    assert transforms["email"] == "typed"  # confidential: masked where it is shown
    assert transforms["id"] == "typed"
    assert transforms[""] == "typed"


@pytest.mark.django_db(transaction=True)
def test_a_second_promotion_while_one_runs_is_skipped(customers, land):
    from django.db import connections

    from governance.pipeline.services import LOCK_NAMESPACE

    land(customers, [row()])
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE[Layer.CHART], customers.pk]
            )
        run = promote_to_chart(dataset=customers, triggered_by="test")
        assert run.status == RunStatus.SKIPPED
        assert "another promotion" in run.error
        assert not ChartRecord.objects.filter(dataset=customers).exists()
    finally:
        other.close()
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED
