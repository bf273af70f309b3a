"""Quarantine review: correcting, re-processing through the promotion, dismissing."""

import pytest
from django.core.exceptions import PermissionDenied

from chart.models import ChartRecord, PiiFinding, QuarantinedRecord, QuarantineStatus
from chart.reprocess import (
    QuarantineReviewError,
    correct_quarantined_values,
    dismiss_quarantined,
    reprocess_quarantined,
)
from chart.services import promote_to_chart
from explore.models import RawRecord
from governance.compliance.models import AuditLog
from governance.pipeline.models import (
    DatasetField,
    GateAction,
    Layer,
    RunKind,
    RunStatus,
    Watermark,
)
from governance.quality.models import CheckResult

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


def quarantined(dataset):
    return {q.raw_record_id: q for q in QuarantinedRecord.objects.filter(dataset=dataset)}


@pytest.fixture
def promoted(customers, land):
    """Two good records, two that fail (a bad tier; a bad tier and amount), one broken line."""
    raws = land(
        customers,
        [
            row(id="1"),
            row(id="2", tier="bronze"),
            row(id="3", tier="platinum", amount="-5"),
            row(id="4", email="dora@example.com"),
            "{broken json",
        ],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (5, 2, 3)
    return raws


def test_a_corrected_record_is_promoted_and_the_raw_record_stays_as_received(
    customers, promoted, steward
):
    record = quarantined(customers)[promoted[1].pk]
    raw_before = RawRecord.objects.values("payload", "raw_text").get(pk=promoted[1].pk)

    correct_quarantined_values(record=record, values={"tier": "silver"}, actor=steward)
    record.refresh_from_db()
    assert record.corrected_payload["tier"] == "silver"
    assert record.corrected_by == steward
    assert RawRecord.objects.values("payload", "raw_text").get(pk=promoted[1].pk) == raw_before

    watermark = Watermark.objects.get(dataset=customers, layer=Layer.CHART).position
    [run] = reprocess_quarantined(records=[record], actor=steward)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.kind, run.triggered_by) == (RunKind.PROMOTE_CHART, "reprocess")
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (1, 1, 0)
    record.refresh_from_db()
    assert record.status == QuarantineStatus.REPROCESSED
    assert record.reprocess_run == run
    chart = ChartRecord.objects.get(pk=record.chart_record_id)
    # Through the same code as a promotion: typed, protected, current.
    assert (chart.raw_record_id, chart.run, chart.data["tier"]) == (promoted[1].pk, run, "silver")
    assert chart.data["ssn"].startswith("enc:v1:") and "ssn" in chart.tokens
    assert chart.data["email"] == "ada@example.com"  # typed: masked where it is shown
    assert chart.is_current
    # The watermark is where the promotion left it.
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == watermark


def test_a_record_still_failing_stays_quarantined_with_fresh_reasons(customers, promoted, steward):
    record = quarantined(customers)[promoted[2].pk]
    assert {r["field"] for r in record.reasons} == {"tier", "amount"}
    correct_quarantined_values(record=record, values={"tier": "gold"}, actor=steward)

    [run] = reprocess_quarantined(records=[record], actor=steward)
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (1, 0, 1)
    record.refresh_from_db()
    assert record.status == QuarantineStatus.OPEN
    assert record.run_id != run.pk  # the run that quarantined it first is kept
    assert record.reprocess_run == run
    assert [(r["field"], r["rule"]) for r in record.reasons] == [("amount", "range")]
    # The run's check results say which rule still failed.
    failed = CheckResult.objects.filter(run=run, failed_count__gt=0)
    assert {(c.rule.field_name, c.rule.kind) for c in failed} == {("amount", "range")}
    assert not ChartRecord.objects.filter(raw_record_id=promoted[2].pk).exists()


def test_counts_stay_consistent_over_a_mixed_selection(customers, promoted, steward):
    records = quarantined(customers)
    correct_quarantined_values(
        record=records[promoted[1].pk], values={"tier": "silver"}, actor=steward
    )
    [run] = reprocess_quarantined(
        records=QuarantinedRecord.objects.filter(dataset=customers), actor=steward
    )
    assert run.rows_in == run.rows_promoted + run.rows_quarantined == 3
    assert (run.rows_promoted, run.rows_quarantined) == (1, 2)
    assert QuarantinedRecord.objects.filter(reprocess_run=run).count() == 3
    assert ChartRecord.objects.filter(run=run).count() == run.rows_promoted
    step = run.steps.get()
    assert (step.status, step.rows) == (RunStatus.SUCCEEDED, 3)


def test_reprocessing_twice_changes_nothing(customers, promoted, steward):
    record = quarantined(customers)[promoted[1].pk]
    correct_quarantined_values(record=record, values={"tier": "silver"}, actor=steward)
    reprocess_quarantined(records=[record], actor=steward)
    charts = ChartRecord.objects.filter(dataset=customers).count()

    [again] = reprocess_quarantined(records=[record], actor=steward)
    assert again.status == RunStatus.SUCCEEDED
    assert (again.rows_in, again.rows_promoted, again.rows_quarantined) == (0, 0, 0)
    assert again.detail["reprocess"]["not_open"] == 1
    assert ChartRecord.objects.filter(dataset=customers).count() == charts


def test_an_older_line_reprocessed_arrives_superseded_by_the_newer_one(customers, land, steward):
    # Line 1 (id 7) fails; line 2 (id 7 again, later) is promoted and current.
    raws = land(customers, [row(id="7", tier="bronze"), row(id="7", notes="later")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(raw_record_id=raws[0].pk)
    correct_quarantined_values(record=record, values={"tier": "gold"}, actor=steward)
    reprocess_quarantined(records=[record], actor=steward)

    newer = ChartRecord.objects.get(raw_record_id=raws[1].pk)
    older = ChartRecord.objects.get(raw_record_id=raws[0].pk)
    assert newer.is_current
    assert not older.is_current and older.superseded_by == newer
    assert (
        ChartRecord.objects.filter(dataset=customers, business_key="7", is_current=True).count()
        == 1
    )


def test_a_newer_line_reprocessed_supersedes_the_older_one(customers, land, steward):
    raws = land(customers, [row(id="8"), row(id="8", tier="bronze")])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(raw_record_id=raws[1].pk)
    correct_quarantined_values(record=record, values={"tier": "silver"}, actor=steward)
    reprocess_quarantined(records=[record], actor=steward)

    older = ChartRecord.objects.get(raw_record_id=raws[0].pk)
    newer = ChartRecord.objects.get(raw_record_id=raws[1].pk)
    assert newer.is_current and newer.data["tier"] == "silver"
    assert not older.is_current and older.superseded_by == newer


def test_an_updated_contract_applies_to_reprocessing(customers, promoted, steward):
    # Instead of fixing the value, the steward accepts the new tier in the contract.
    DatasetField.objects.filter(dataset=customers, name="tier").update(
        allowed_values=["gold", "silver", "bronze"]
    )
    record = quarantined(customers)[promoted[1].pk]
    [run] = reprocess_quarantined(records=[record], actor=steward)
    assert (run.rows_promoted, run.rows_quarantined) == (1, 0)
    assert ChartRecord.objects.get(raw_record_id=promoted[1].pk).data["tier"] == "bronze"


def test_a_broken_line_can_be_given_its_values(customers, promoted, steward):
    record = quarantined(customers)[promoted[4].pk]
    correct_quarantined_values(
        record=record, values={"id": "5", "email": "eve@example.com"}, actor=steward
    )
    [run] = reprocess_quarantined(records=[record], actor=steward)
    assert (run.rows_promoted, run.rows_quarantined) == (1, 0)
    assert ChartRecord.objects.get(raw_record_id=promoted[4].pk).business_key == "5"


def test_pii_found_when_reprocessing_is_recorded_for_the_run(customers, promoted, steward):
    record = quarantined(customers)[promoted[1].pk]
    correct_quarantined_values(
        record=record, values={"tier": "gold", "notes": "card 4111 1111 1111 1111"}, actor=steward
    )
    [run] = reprocess_quarantined(records=[record], actor=steward)
    finding = PiiFinding.objects.get(run=run, field_name="notes")
    assert finding.chart_record_id == ChartRecord.objects.get(run=run).pk
    assert "4111 1111 1111 1111" not in finding.masked_excerpt


def test_a_fail_gate_keeps_nothing_of_a_failing_reprocess(customers, promoted, steward):
    customers.gate_action = GateAction.FAIL
    customers.save()
    records = quarantined(customers)
    correct_quarantined_values(
        record=records[promoted[1].pk], values={"tier": "silver"}, actor=steward
    )
    [run] = reprocess_quarantined(records=list(records.values()), actor=steward)
    assert run.status == RunStatus.FAILED
    assert "gate is 'fail'" in run.error
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (0, 0, 0)
    assert not ChartRecord.objects.filter(run=run).exists()
    assert QuarantinedRecord.objects.filter(status=QuarantineStatus.OPEN).count() == 3


def test_dismissing_needs_a_reason_and_is_audited(customers, promoted, steward):
    record = quarantined(customers)[promoted[1].pk]
    with pytest.raises(QuarantineReviewError, match="reason is required"):
        dismiss_quarantined(records=[record], actor=steward, reason="  ")
    assert dismiss_quarantined(records=[record], actor=steward, reason="test data") == 1
    record.refresh_from_db()
    assert (record.status, record.resolution_note, record.resolved_by) == (
        QuarantineStatus.DISMISSED,
        "test data",
        steward,
    )
    entry = AuditLog.objects.get(object_type="chart.quarantinedrecord", object_id=str(record.pk))
    assert entry.actor == "steward"
    assert entry.after["status"] == "dismissed"
    # Dismissed is final: neither dismissed again, corrected nor re-processed.
    assert dismiss_quarantined(records=[record], actor=steward, reason="again") == 0
    with pytest.raises(QuarantineReviewError, match="only an open record"):
        correct_quarantined_values(record=record, values={"tier": "gold"}, actor=steward)
    [run] = reprocess_quarantined(records=[record], actor=steward)
    assert run.rows_in == 0


def test_every_action_is_audited_without_the_values(customers, promoted, steward):
    record = quarantined(customers)[promoted[1].pk]
    correct_quarantined_values(
        record=record, values={"email": "secret.person@example.com", "tier": "gold"}, actor=steward
    )
    [run] = reprocess_quarantined(records=[record], actor=steward)
    entries = list(
        AuditLog.objects.filter(object_type="chart.quarantinedrecord", object_id=str(record.pk))
        .order_by("id")
        .values_list("action", "detail", "after")
    )
    assert [action for action, _, _ in entries] == ["update", "update"]
    assert "corrected email, tier" in entries[0][1]
    assert "secret.person" not in str(entries[0])
    record.refresh_from_db()
    assert f"promoted to chart record {record.chart_record_id}" in entries[1][1]
    assert entries[1][2]["status"] == "reprocessed"
    run_entries = AuditLog.objects.filter(object_type="pipeline.run", object_id=str(run.pk))
    assert run_entries.count() == 2  # requested, then finished with its counts


def test_a_correction_names_an_unknown_field(customers, promoted, steward):
    record = quarantined(customers)[promoted[1].pk]
    with pytest.raises(QuarantineReviewError, match="'colour' is neither a field"):
        correct_quarantined_values(record=record, values={"colour": "red"}, actor=steward)


def test_a_viewer_may_not_review(customers, promoted, viewer):
    record = quarantined(customers)[promoted[1].pk]
    with pytest.raises(PermissionDenied):
        correct_quarantined_values(record=record, values={"tier": "gold"}, actor=viewer)
    with pytest.raises(PermissionDenied):
        reprocess_quarantined(records=[record], actor=viewer)
    with pytest.raises(PermissionDenied):
        dismiss_quarantined(records=[record], actor=viewer, reason="no")
    record.refresh_from_db()
    assert record.status == QuarantineStatus.OPEN and record.corrected_payload is None


def test_a_running_promotion_of_the_dataset_skips_the_reprocess(customers, promoted, steward):
    import psycopg
    from django.db import connection

    from governance.pipeline.services import LOCK_NAMESPACE

    record = quarantined(customers)[promoted[1].pk]
    correct_quarantined_values(record=record, values={"tier": "silver"}, actor=steward)
    settings = connection.settings_dict
    params = {
        "host": settings["HOST"],
        "port": settings["PORT"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "dbname": settings["NAME"],
    }
    # Another session holds the dataset's chart promotion lock, as a running promotion does.
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as other:
        other.execute(
            "SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE[Layer.CHART], customers.pk]
        )
        [run] = reprocess_quarantined(records=[record], actor=steward)
    assert run.status == RunStatus.SKIPPED
    assert "another promotion" in run.error
    record.refresh_from_db()
    assert record.status == QuarantineStatus.OPEN
    assert not ChartRecord.objects.filter(raw_record_id=promoted[1].pk).exists()
