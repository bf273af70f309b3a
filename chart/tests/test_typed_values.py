"""Chart keeps what analysis needs: typed values, tokens for encrypted ones, no values in
messages. Uniqueness and business keys work on real values (or their keyed tokens), in one
run of many chunks and across runs; metrics over masked levels produce facts."""

import csv
import random
from pathlib import Path

import pytest
from django.conf import settings

from chart.models import ChartRecord, QuarantinedRecord
from chart.services import promote_to_chart
from explore import services as ingest
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import ClassificationLevel
from governance.compliance.pii.masking import REDACTED
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.contracts import import_contract, read_contract_file
from governance.pipeline.models import DatasetField, FieldType, RunStatus
from governance.quality.models import CheckResult, QualityRule, RuleKind
from navigate.models import Fact, MetricDefinition
from navigate.services import promote_to_navigate

pytestmark = pytest.mark.django_db


def level(name: str) -> ClassificationLevel:
    return ClassificationLevel.objects.get(name=name)


@pytest.fixture
def members(dataset):
    """A unique internal member id, a unique restricted national id, no business key."""
    dataset.business_key = []
    dataset.save()
    for position, (name, data_type, classification) in enumerate(
        [
            ("member_id", FieldType.INTEGER, "internal"),
            ("national_id", FieldType.STRING, "restricted"),
            ("joined", FieldType.DATE, "internal"),
            ("note", FieldType.STRING, None),
        ]
    ):
        DatasetField.objects.create(
            dataset=dataset,
            name=name,
            position=position,
            data_type=data_type,
            unique=name in ("member_id", "national_id"),
            classification=level(classification) if classification else None,
        )
    return dataset


def member(member_id: int, national_id: str | None = None) -> dict:
    return {
        "member_id": str(member_id),
        "national_id": national_id or f"NID-{member_id:06d}",
        "joined": "2026-03-14",
        "note": "",
    }


def quarantined_ids(dataset) -> list[int]:
    return sorted(
        int(q.raw_record_id)
        for q in QuarantinedRecord.objects.filter(dataset=dataset)
        if any(r["rule"] == RuleKind.UNIQUE for r in q.reasons)
    )


def test_exactly_the_real_duplicates_of_a_unique_internal_id_are_quarantined(members, land):
    # 3,000 ids with 1% real duplicates, shuffled, in one run of many chunks.
    rng = random.Random(7)
    ids = list(range(1, 3001))
    duplicates = rng.sample(ids, 30)
    rows = [member(i) for i in ids] + [member(i, f"OTHER-{i}") for i in duplicates]
    rng.shuffle(rows)
    raws = land(members, rows)
    run = promote_to_chart(dataset=members, triggered_by="test", chunk_size=250)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (3030, 3000, 30)
    # The second line of each duplicated id is the one held back.
    first_seen: dict[str, int] = {}
    expected = []
    for raw in raws:
        if raw.payload["member_id"] in first_seen:
            expected.append(raw.pk)
        first_seen.setdefault(raw.payload["member_id"], raw.pk)
    assert quarantined_ids(members) == sorted(expected)
    reasons = QuarantinedRecord.objects.filter(dataset=members).first().reasons
    assert reasons[0]["field"] == "member_id" and reasons[0]["rule"] == RuleKind.UNIQUE
    # Chart holds the typed ids, one each.
    stored = sorted(r.data["member_id"] for r in ChartRecord.objects.filter(dataset=members))
    assert stored == ids


def test_a_duplicate_of_an_id_promoted_by_an_earlier_run_is_quarantined(members, land):
    land(members, [member(i) for i in range(1, 101)])
    first = promote_to_chart(dataset=members, triggered_by="test")
    assert (first.rows_promoted, first.rows_quarantined) == (100, 0)
    # The next batch: two ids again (with other national ids) and fresh ones.
    again = land(members, [member(5, "X-5"), member(101), member(77, "X-77"), member(102)])
    second = promote_to_chart(dataset=members, triggered_by="test")
    assert (second.rows_promoted, second.rows_quarantined) == (2, 2)
    assert quarantined_ids(members) == sorted([again[0].pk, again[2].pk])


def test_a_restricted_unique_field_catches_duplicates_through_its_token(members, land):
    raws = land(members, [member(1, "NID-SAME"), member(2, "NID-SAME"), member(3, "NID-3")])
    run = promote_to_chart(dataset=members, triggered_by="test")
    assert (run.rows_promoted, run.rows_quarantined) == (2, 1)
    [held] = QuarantinedRecord.objects.filter(dataset=members)
    assert held.raw_record_id == raws[1].pk
    assert held.reasons[0]["field"] == "national_id"
    # Stored encrypted, each ciphertext different, the token the same for equal values.
    records = list(ChartRecord.objects.filter(dataset=members).order_by("id"))
    assert all(r.data["national_id"].startswith("enc:v1:") for r in records)
    assert records[0].tokens["national_id"] == TokenKeyring.from_settings().token("NID-SAME")
    assert "NID-SAME" not in str(records[0].tokens)
    # A later run catches it too.
    land(members, [member(4, "NID-3")])
    later = promote_to_chart(dataset=members, triggered_by="test")
    assert (later.rows_promoted, later.rows_quarantined) == (0, 1)


def test_a_restricted_business_key_supersedes_through_its_token(members, land):
    members.business_key = ["national_id"]
    members.save()
    DatasetField.objects.filter(dataset=members).update(unique=False)
    land(members, [member(1, "NID-A"), member(2, "NID-B")])
    promote_to_chart(dataset=members, triggered_by="test")
    land(members, [member(3, "NID-A")])
    promote_to_chart(dataset=members, triggered_by="test")
    current = ChartRecord.objects.filter(dataset=members, is_current=True)
    assert sorted(r.data["member_id"] for r in current) == [2, 3]
    # The key column holds the token, never the value.
    keys = set(ChartRecord.objects.filter(dataset=members).values_list("business_key", flat=True))
    assert keys == {TokenKeyring.from_settings().token(v) for v in ("NID-A", "NID-B")}


def test_reasons_and_check_results_carry_no_values(members, land):
    DatasetField.objects.filter(dataset=members, name="note").update(
        classification=level("confidential")
    )
    QualityRule.objects.create(
        dataset=members,
        field_name="",
        kind=RuleKind.CROSS_FIELD,
        parameters={"left": "national_id", "op": "==", "right": "note"},
        dimension_id=QualityRule._meta.get_field("dimension")
        .related_model.objects.get(code="consistency")
        .pk,
    )
    land(
        members,
        [
            {"member_id": "123-45-6789", "national_id": "741-85-2963", "note": "BE71 0961"},
            {"member_id": "9", "national_id": "741-85-2963", "note": "BE71 0961 2345 6769"},
        ],
    )
    run = promote_to_chart(dataset=members, triggered_by="test")
    stored = str(list(QuarantinedRecord.objects.values_list("reasons", flat=True)))
    stored += str(list(CheckResult.objects.filter(run=run).values_list("failing_examples")))
    stored += run.error + str(run.detail)
    for secret in ("123-45-6789", "741-85-2963", "BE71 0961", "0961"):
        assert secret not in stored
    reasons = {
        (r["field"], r["rule"]): r
        for q in QuarantinedRecord.objects.filter(dataset=members)
        for r in q.reasons
    }
    # Type failure of an internal field: the message says what was expected, the excerpt
    # is masked by the level's rule (partial: never more than half, at most 4 kept).
    wrong_type = reasons[("member_id", "type")]
    assert wrong_type["message"] == "expected an integer"
    assert wrong_type["value_excerpt"].count("*") >= 5
    # A cross-field excerpt is protected at the higher of both levels (restricted).
    cross = reasons[("", RuleKind.CROSS_FIELD)]
    assert cross["message"] == "national_id == note does not hold"
    assert cross["value_excerpt"] == REDACTED


def test_a_metric_over_the_demo_datasets_internal_date_produces_facts():
    examples = Path(settings.BASE_DIR) / "examples"
    contract = read_contract_file(examples / "customers.contract.yaml")
    dataset = import_contract(data=contract[0], actor="test").dataset
    with (examples / "customers.csv").open("rb") as handle:
        batch = ingest.store_upload(
            dataset=dataset, file=handle, filename="customers.csv", actor="test", via="cli"
        )
    ingest.load_batch(batch_id=batch.pk, triggered_by="test")
    with (examples / "customers.csv").open(encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    chart_run = promote_to_chart(dataset=dataset, triggered_by="test")
    assert chart_run.status == RunStatus.SUCCEEDED, chart_run.error
    assert chart_run.rows_promoted > 10
    record = ChartRecord.objects.filter(dataset=dataset).order_by("id").first()
    assert record.data["signed_up_on"] == rows[0]["signed_up_on"]  # internal, kept typed
    assert record.data["customer_id"] == int(rows[0]["customer_id"])
    metric = MetricDefinition.objects.create(
        dataset=dataset,
        slug="signups-per-month",
        name="Sign-ups per month",
        aggregation="count",
        time_field="signed_up_on",
        grain="month",
        dimension_fields=["country"],
    )
    run = promote_to_navigate(dataset=dataset, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED, run.error
    facts = Fact.objects.filter(metric=metric)
    assert facts.exists()
    assert (
        sum(f.record_count for f in facts)
        == ChartRecord.objects.filter(dataset=dataset, is_current=True)
        .exclude(data__signed_up_on=None)
        .count()
    )


def test_restricted_values_decrypt_with_their_field_and_nothing_else(members, land):
    land(members, [member(1, "NID-XYZ")])
    promote_to_chart(dataset=members, triggered_by="test")
    record = ChartRecord.objects.get(dataset=members)
    keyring = Keyring.from_settings()
    assert (
        keyring.decrypt(
            record.data["national_id"], context=field_context(members.pk, "national_id")
        )
        == "NID-XYZ"
    )
