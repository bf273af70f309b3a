"""Messages stored before Atlas kept values out of them are rewritten by a migration."""

import pytest
from django.apps import apps

from chart.models import ChartRecord, QuarantinedRecord
from chart.reprotect import scrub_legacy_messages
from governance.compliance.pii.masking import REDACTED
from governance.pipeline.models import Run, RunKind
from governance.quality.models import CheckResult, QualityRule

pytestmark = pytest.mark.django_db


def test_reasons_examples_and_run_errors_lose_their_values(customers, land):
    raws = land(customers, [{"id": "x"}, {"id": "1"}])
    run = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        triggered_by="test",
        error="2 record(s) fail; first failing raw record 7: id: expected an integer, got "
        "'123-45-6789'; ssn: a value is required",
    )
    legacy = [
        {
            "field": "id",
            "rule": "type",
            "message": "expected an integer, got '123-45-6789'",
            "value_excerpt": "123-45-6789",
        },
        {
            "field": "ssn",
            "rule": "pattern",
            "message": "does not match the contract's pattern",
            "value_excerpt": "741-85-2963",
        },
        {
            "field": "notes",
            "rule": "max_length",
            "message": "longer than 5 characters (24)",
            "value_excerpt": "card 4111 1111 1111 1111",
        },
        {
            "field": "",
            "rule": "cross_field",
            "message": "ssn == notes does not hold",
            "value_excerpt": "741-85-2963 vs BE71 0961",
        },
    ]
    QuarantinedRecord.objects.create(
        dataset=customers, raw_record_id=raws[0].pk, reasons=legacy, run=run
    )
    ChartRecord.objects.create(
        dataset=customers, raw_record_id=raws[1].pk, data={}, issues=legacy, run=run
    )
    rule = QualityRule.objects.filter(dataset=customers).first() or QualityRule.objects.create(
        dataset=customers, field_name="id", kind="type", dimension_id=1
    )
    CheckResult.objects.create(run=run, rule=rule, failing_examples=legacy)

    counts = scrub_legacy_messages(apps)
    assert counts == {
        "chart.QuarantinedRecord": 1,
        "chart.ChartRecord": 1,
        "quality.CheckResult": 1,
        "pipeline.Run": 1,
    }
    stored = str(
        [
            QuarantinedRecord.objects.get().reasons,
            ChartRecord.objects.get().issues,
            CheckResult.objects.get().failing_examples,
            Run.objects.get(pk=run.pk).error,
        ]
    )
    for secret in ("123-45-6789", "741-85-2963", "4111 1111 1111 1111", "BE71 0961"):
        assert secret not in stored
    reasons = QuarantinedRecord.objects.get().reasons
    assert reasons[0]["message"] == "expected an integer"  # id is unclassified: no PII left
    assert reasons[1]["value_excerpt"] == REDACTED  # ssn is restricted
    assert reasons[2]["value_excerpt"].startswith("card ")  # the card masked, words kept
    assert reasons[3]["value_excerpt"] == REDACTED  # the record: the dataset's highest
    assert Run.objects.get(pk=run.pk).error == (
        "2 record(s) fail; first failing raw record 7: id: expected an integer; "
        "ssn: a value is required"
    )
