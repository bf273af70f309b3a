"""Rules a contract implies, steward rules judged on records, and the scores."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from chart.models import QuarantinedRecord
from chart.services import promote_to_chart
from governance.quality.models import CheckResult, QualityDimension, QualityRule, QualityScore
from governance.quality.rules import sync_contract_rules
from governance.quality.scoring import overall_score, rescore

D = Decimal


def test_overall_leaves_out_unmeasured_dimensions_and_rescales():
    weights = {"validity": D("0.5"), "completeness": D("0.25"), "timeliness": D("0.25")}
    scores = {"validity": D("0.8"), "completeness": D("1"), "timeliness": None}
    # (0.8*0.5 + 1*0.25) / 0.75
    assert overall_score(scores, weights) == D("0.8667")
    assert overall_score({"validity": None}, weights) is None


@pytest.mark.django_db
def test_contract_rules_follow_the_contract(customers):
    rules = sync_contract_rules(dataset=customers)
    kinds = {(r.field_name, r.kind, r.dimension.code) for r in rules}
    assert ("id", "not_null", "completeness") in kinds
    assert ("tier", "allowed_values", "validity") in kinds
    assert ("amount", "range", "accuracy") in kinds
    assert ("", "unique", "uniqueness") in kinds
    customers.fields.filter(name="tier").update(allowed_values=[])
    sync_contract_rules(dataset=customers)
    rule = QualityRule.objects.get(dataset=customers, field_name="tier", kind="allowed_values")
    assert not rule.is_active


def _steward_rule(dataset, kind, dimension, field_name="", **parameters):
    return QualityRule(
        dataset=dataset,
        field_name=field_name,
        kind=kind,
        dimension=QualityDimension.objects.get(code=dimension),
        parameters=parameters,
        origin="steward",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "dimension", "field_name", "parameters", "message"),
    [
        ("cross_field", "consistency", "", {"left": "id", "op": "<~", "right": "amount"}, "op"),
        ("cross_field", "consistency", "", {"left": "nope", "op": "<", "right": "id"}, "nope"),
        ("reference_list", "accuracy", "tier", {}, "values"),
        ("range", "accuracy", "amount", {"min": "abc"}, "must be a number"),
        ("pattern", "validity", "notes", {"regex": "(a+)+"}, "catastrophic"),
        ("range", "validity", "amount", {"min": 1}, "measures accuracy"),
    ],
)
def test_bad_steward_rules_are_refused_with_the_reason(
    customers, kind, dimension, field_name, parameters, message
):
    rule = _steward_rule(customers, kind, dimension, field_name, **parameters)
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert message in str(error.value)


@pytest.mark.django_db
def test_steward_rules_quarantine_and_timeliness_is_measured_only(customers, land):
    customers.event_time_field = "signup"
    customers.freshness_target = timedelta(days=30)
    customers.save()
    _steward_rule(customers, "reference_list", "accuracy", "tier", values=["gold"]).save()
    _steward_rule(
        customers, "cross_field", "consistency", left="amount", op=">=", right="id"
    ).save()
    today = timezone.now().date().isoformat()
    land(
        customers,
        [
            {"id": "1", "tier": "gold", "amount": "5", "signup": today},
            {"id": "2", "tier": "silver", "amount": "5", "signup": today},  # reference list
            {"id": "9", "tier": "gold", "amount": "5", "signup": today},  # amount < id
            {"id": "4", "tier": "gold", "amount": "5", "signup": "2001-01-01"},  # stale
        ],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert (run.rows_promoted, run.rows_quarantined) == (2, 2)
    rules = {q.reasons[0]["rule"] for q in QuarantinedRecord.objects.filter(run=run)}
    assert rules == {"reference_list", "cross_field"}
    freshness = CheckResult.objects.get(run=run, rule__kind="freshness")
    assert (freshness.passed_count, freshness.failed_count) == (3, 1)
    score = QualityScore.objects.get(run=run)
    assert D(score.dimension_scores["timeliness"]) == D("0.75")
    assert D(score.dimension_scores["consistency"]) == D("0.75")


@pytest.mark.django_db
def test_a_score_keeps_the_weights_it_used(customers, land):
    land(customers, [{"id": "1", "tier": "bronze"}, {"id": "2", "tier": "gold"}])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    score = QualityScore.objects.get(run=run)
    before = score.overall
    QualityDimension.objects.filter(code="validity").update(weight=D("0.05"))
    QualityDimension.objects.filter(code="completeness").update(weight=D("0.45"))
    score.refresh_from_db()
    assert score.overall == before
    assert score.weights_used["validity"] == "0.2500"
    weights = dict(QualityDimension.objects.values_list("code", "weight"))
    assert rescore(score, weights) > before  # validity failed; it now weighs less
