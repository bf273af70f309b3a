"""Chart values follow classification changes (re-protect runs), and legacy records masked
at promotion are rebuilt typed from explore (rebuild_chart_values)."""

import io
from datetime import UTC, date, datetime

import pytest
from celery.app.base import Celery
from django.core.cache import cache
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from atlas_site.partitions import RAW_RECORDS, create_partition
from chart import reprotect
from chart.checks import legacy_chart_values
from chart.evaluation import sealed_context
from chart.models import LEGACY_MASKED, TYPED_VALUES, ChartRecord, QuarantinedRecord
from chart.protected import corrected_context
from chart.services import promote_to_chart
from chart.tasks import reprotect_chart as reprotect_task
from explore.models import LandingBatch, RawRecord
from governance.archive.models import RetentionPolicy
from governance.archive.services.retention import apply_retention
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import AuditLog, ClassificationLevel
from governance.compliance.pii.masking import mask
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.classification import change_field_classification, level_changed
from governance.pipeline.models import (
    DatasetField,
    FieldType,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    Transform,
)
from governance.pipeline.services import create_run
from navigate.models import Fact, MetricDefinition
from navigate.services import promote_to_navigate
from orchestration.recovery import RESENT_KEY, STALLED_AFTER, resend_stalled_work

REPROTECT_TASK = reprotect_task.name

SSN = "123-45-6789"  # a valid SSN: PII that only the restricted level expects


def level(name: str) -> ClassificationLevel:
    return ClassificationLevel.objects.get(name=name)


def token(value) -> str:
    return TokenKeyring.from_settings().token(value)


def decrypt(value: str, context: str) -> str:
    return Keyring.from_settings().decrypt(value, context=context)


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent (Celery.send_task, which apply_async calls), recorded, not sent."""
    calls = []
    monkeypatch.setattr(
        Celery,
        "send_task",
        lambda app, name, args=None, kwargs=None, **options: calls.append((name, list(args))),
    )
    return calls


@pytest.fixture
def unique_ssn(customers):
    DatasetField.objects.filter(dataset=customers, name="ssn").update(unique=True)
    return customers


def customer(number: int, ssn: str) -> dict:
    return {"id": str(number), "tier": "gold", "amount": "1", "ssn": ssn, "notes": ""}


def ssn_of(dataset, number: int) -> ChartRecord:
    return ChartRecord.objects.get(dataset=dataset, business_key=str(number))


def unique_failures(run) -> int:
    return sum(
        any(reason["rule"] == "unique" and reason["field"] == "ssn" for reason in q.reasons)
        for q in QuarantinedRecord.objects.filter(run=run)
    )


# --- Re-protect runs ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lowering_then_raising_a_level_reprotects_chart_values(
    unique_ssn, land, officer, steward, sent
):
    land(unique_ssn, [customer(1, SSN), customer(2, "REF-0002")])
    assert promote_to_chart(dataset=unique_ssn, triggered_by="test").rows_promoted == 2
    assert ssn_of(unique_ssn, 2).data["ssn"].startswith("enc:v1:")
    ssn = DatasetField.objects.get(dataset=unique_ssn, name="ssn")

    # An officer lowers it, with a reason: a re-protect run is queued and sent by name
    # once the change commits.
    change = change_field_classification(
        field=ssn, level=level("public"), actor=officer, reason="test identifiers only"
    )
    run = change.reprotect_run
    assert run.kind == RunKind.REPROTECT and run.status == RunStatus.QUEUED
    assert sent == [(REPROTECT_TASK, [run.pk])]
    assert reprotect_task(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert run.detail["reprotect"]["records"] == 2 and run.detail["reprotect"]["changed"] == 2
    assert AuditLog.objects.filter(object_type="pipeline.run", object_id=str(run.pk)).exists()
    # A value that is no PII is now stored typed, as received; an SSN, which the public
    # level does not expect, is tagged with its original sealed beside it.
    plain, tagged = ssn_of(unique_ssn, 2), ssn_of(unique_ssn, 1)
    assert plain.data["ssn"] == "REF-0002"
    assert tagged.data["ssn"] == "<us_ssn>"
    original = tagged.sealed["data"]["ssn"]
    assert decrypt(original, sealed_context(unique_ssn.pk, "ssn")) == SSN
    # Unique: a token each, so uniqueness still holds, whatever the level.
    assert plain.tokens["ssn"] == token("REF-0002") and tagged.tokens["ssn"] == token(SSN)
    assert LineageEdge.objects.filter(
        dataset=unique_ssn, target_name="ssn", transform=Transform.TYPED, run=run
    ).exists()
    land(unique_ssn, [customer(3, "REF-0002")])
    later = promote_to_chart(dataset=unique_ssn, triggered_by="test")
    assert (later.rows_promoted, unique_failures(later)) == (0, 1)

    # A steward may raise it again: ciphertext and token come back.
    sent.clear()
    again = change_field_classification(field=ssn, level=level("restricted"), actor=steward)
    assert sent == [(REPROTECT_TASK, [again.reprotect_run.pk])]
    assert reprotect_task(again.reprotect_run.pk) == RunStatus.SUCCEEDED
    plain, tagged = ssn_of(unique_ssn, 2), ssn_of(unique_ssn, 1)
    assert plain.data["ssn"].startswith("enc:v1:") and tagged.data["ssn"].startswith("enc:v1:")
    assert decrypt(tagged.data["ssn"], field_context(unique_ssn.pk, "ssn")) == SSN
    assert tagged.sealed == {} and plain.tokens["ssn"] == token("REF-0002")
    land(unique_ssn, [customer(4, SSN), customer(5, "REF-0005")])
    last = promote_to_chart(dataset=unique_ssn, triggered_by="test")
    assert (last.rows_promoted, unique_failures(last)) == (1, 1)


def test_a_restricted_business_key_follows_its_level(unique_ssn, land, officer):
    DatasetField.objects.filter(dataset=unique_ssn, name="ssn").update(unique=False)
    unique_ssn.business_key = ["ssn"]
    unique_ssn.save()
    land(unique_ssn, [customer(1, "REF-1"), customer(2, "REF-2")])
    promote_to_chart(dataset=unique_ssn, triggered_by="test")
    assert set(ChartRecord.objects.values_list("business_key", flat=True)) == {
        token("REF-1"),
        token("REF-2"),
    }
    ssn = DatasetField.objects.get(dataset=unique_ssn, name="ssn")
    run = change_field_classification(
        field=ssn, level=level("internal"), actor=officer, reason="not personal data"
    ).reprotect_run
    reprotect.reprotect_chart(dataset=unique_ssn, run=run)
    assert set(ChartRecord.objects.values_list("business_key", flat=True)) == {"REF-1", "REF-2"}
    # A later record with the same key supersedes the earlier one, as it would have before.
    land(unique_ssn, [customer(3, "REF-1")])
    promote_to_chart(dataset=unique_ssn, triggered_by="test")
    current = ChartRecord.objects.filter(dataset=unique_ssn, is_current=True)
    assert sorted(r.data["id"] for r in current) == [2, 3]


def test_a_run_resumes_after_its_last_committed_chunk(customers, land, officer, monkeypatch):
    land(customers, [customer(number, f"REF-{number}") for number in range(1, 26)])
    promote_to_chart(dataset=customers, triggered_by="test")
    ssn = DatasetField.objects.get(dataset=customers, name="ssn")
    run = change_field_classification(
        field=ssn, level=level("public"), actor=officer, reason="references, not SSNs"
    ).reprotect_run

    # The worker dies in the second chunk (the database connection is lost).
    real = reprotect.reprotect_record
    calls = []

    def dying(record, protector):
        calls.append(record.pk)
        if len(calls) == 11:
            raise OperationalError("server closed the connection unexpectedly")
        return real(record, protector)

    monkeypatch.setattr(reprotect, "reprotect_record", dying)
    with pytest.raises(OperationalError):
        reprotect.reprotect_chart(dataset=customers, run=run, chunk_size=10)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    first_chunk = list(ChartRecord.objects.filter(dataset=customers).order_by("raw_record_id"))
    assert run.detail["reprotect"] == {
        "last_raw_record_id": first_chunk[9].raw_record_id,
        "records": 10,
        "changed": 10,
    }
    assert [r.data["ssn"] for r in first_chunk[:10]] == [f"REF-{n}" for n in range(1, 11)]
    assert all(r.data["ssn"].startswith("enc:v1:") for r in first_chunk[10:])

    # The retry resumes after the committed chunk: the first ten are not read again.
    calls.clear()
    monkeypatch.setattr(reprotect, "reprotect_record", lambda r, p: calls.append(r) or real(r, p))
    done = reprotect.reprotect_chart(dataset=customers, run=run, chunk_size=10)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert len(calls) == 15
    assert done.detail["reprotect"]["records"] == 25 and done.detail["reprotect"]["changed"] == 25
    stored = ChartRecord.objects.filter(dataset=customers).order_by("raw_record_id")
    assert [r.data["ssn"] for r in stored] == [f"REF-{n}" for n in range(1, 26)]

    # Re-protecting records already re-protected changes nothing material: nothing written.
    before = {r.pk: r.data for r in stored}
    second = Run.objects.create(dataset=customers, kind=RunKind.REPROTECT, triggered_by="test")
    assert reprotect.reprotect_chart(dataset=customers, run=second).status == RunStatus.SUCCEEDED
    second.refresh_from_db()
    assert second.detail["reprotect"]["changed"] == 0
    assert {r.pk: r.data for r in ChartRecord.objects.filter(dataset=customers)} == before


def test_no_run_when_chart_stores_the_values_the_same(customers, land, officer, steward):
    land(customers, [customer(1, "REF-1")])
    promote_to_chart(dataset=customers, triggered_by="test")
    tier = DatasetField.objects.get(dataset=customers, name="tier")
    # An enumeration, unclassified → internal: stored typed either way.
    change = change_field_classification(field=tier, level=level("internal"), actor=steward)
    assert change.reprotect_run is None
    # Two changes before a worker starts share one queued run.
    ssn = DatasetField.objects.get(dataset=customers, name="ssn")
    notes = DatasetField.objects.get(dataset=customers, name="notes")
    first = change_field_classification(field=notes, level=level("restricted"), actor=steward)
    second = change_field_classification(
        field=ssn, level=level("public"), actor=officer, reason="references"
    )
    assert first.reprotect_run.pk == second.reprotect_run.pk
    assert len(second.reprotect_run.detail["reasons"]) == 2


def test_a_level_that_stops_encrypting_reprotects_its_datasets(customers, land, sent):
    land(customers, [customer(1, "REF-1")])
    promote_to_chart(dataset=customers, triggered_by="test")
    restricted = level("restricted")
    restricted.requires_encryption = False
    restricted.save()
    [run] = level_changed(
        level=restricted, rank_before=restricted.rank, encryption_before=True, actor="test"
    )
    assert run.dataset == customers and run.kind == RunKind.REPROTECT
    reprotect.reprotect_chart(dataset=customers, run=run)
    assert ssn_of(customers, 1).data["ssn"] == "REF-1"


def test_stalled_reprotect_runs_are_sent_again_by_name(
    customers, sent, django_capture_on_commit_callbacks
):
    stalled = timezone.now() - 2 * STALLED_AFTER
    run = Run.objects.create(dataset=customers, kind=RunKind.REPROTECT, triggered_by="test")
    Run.objects.filter(pk=run.pk).update(created_at=stalled)
    cache.delete(RESENT_KEY.format("run", run.pk))
    with django_capture_on_commit_callbacks(execute=True):
        resent = resend_stalled_work(now=timezone.now())
    assert run.pk in resent["runs"]
    assert (REPROTECT_TASK, [run.pk]) in sent


# --- Rebuilding legacy records ------------------------------------------------------------


@pytest.fixture
def members(dataset):
    """A unique internal member id, an internal date, a restricted national id."""
    dataset.business_key = []
    dataset.save()
    for position, (name, data_type, classification, unique) in enumerate(
        [
            ("member_id", FieldType.INTEGER, "internal", True),
            ("national_id", FieldType.STRING, "restricted", True),
            ("joined", FieldType.DATE, "internal", False),
        ]
    ):
        DatasetField.objects.create(
            dataset=dataset,
            name=name,
            position=position,
            data_type=data_type,
            unique=unique,
            classification=level(classification),
        )
    return dataset


def member(number: int) -> dict:
    return {"member_id": str(number), "national_id": f"NID-{number:04d}", "joined": "2026-03-14"}


def make_legacy(record: ChartRecord) -> None:
    """As Atlas stored it before typed values: masked at promotion, no tokens."""
    record.data = {
        "member_id": mask(str(record.data["member_id"]), "partial"),
        "national_id": record.data["national_id"],  # encrypted then too
        "joined": mask(record.data["joined"], "partial"),
    }
    record.tokens, record.sealed, record.protection_version = {}, {}, LEGACY_MASKED
    record.save()


@pytest.fixture
def legacy(members, land):
    raws = land(members, [member(number) for number in range(1, 6)])
    promote_to_chart(dataset=members, triggered_by="test")
    for record in ChartRecord.objects.filter(dataset=members):
        make_legacy(record)
    return raws


def test_legacy_records_are_rebuilt_typed_from_explore(members, legacy, land):
    record = ChartRecord.objects.filter(dataset=members).order_by("raw_record_id").first()
    assert record.data["joined"].startswith("****") and "*" in record.data["member_id"]
    [warning] = legacy_chart_values(databases=["default"])
    assert warning.id == "atlas.W010" and "5 chart records" in warning.msg
    assert "rebuild_chart_values" in warning.hint

    report = reprotect.rebuild_legacy_records(batch_size=2)
    assert (report.rebuilt, report.archived, report.busy) == (5, 0, [])
    records = list(ChartRecord.objects.filter(dataset=members).order_by("raw_record_id"))
    assert [r.protection_version for r in records] == [TYPED_VALUES] * 5
    assert [r.data["member_id"] for r in records] == [1, 2, 3, 4, 5]
    assert {r.data["joined"] for r in records} == {"2026-03-14"}
    assert records[0].data["national_id"].startswith("enc:v1:")
    assert records[0].tokens == {"member_id": token(1), "national_id": token("NID-0001")}
    assert legacy_chart_values(databases=["default"]) == []
    assert AuditLog.objects.filter(
        object_type="pipeline.dataset", actor__contains="rebuild"
    ).exists()

    # The unique internal id works: exactly the duplicate is quarantined.
    land(members, [member(3) | {"national_id": "NID-OTHER"}, member(6)])
    run = promote_to_chart(dataset=members, triggered_by="test")
    assert (run.rows_promoted, run.rows_quarantined) == (1, 1)
    [held] = QuarantinedRecord.objects.filter(run=run)
    assert held.reasons[0]["field"] == "member_id" and held.reasons[0]["rule"] == "unique"
    # A metric over the internal date produces facts.
    metric = MetricDefinition.objects.create(
        dataset=members,
        slug="joins-per-month",
        name="Joins per month",
        aggregation="count",
        time_field="joined",
        grain="month",
    )
    facts_run = promote_to_navigate(dataset=members, triggered_by="test")
    assert facts_run.status == RunStatus.SUCCEEDED, facts_run.error
    assert sum(fact.record_count for fact in Fact.objects.filter(metric=metric)) == 6


def test_a_record_whose_raw_record_was_archived_is_reported_and_kept(members, legacy):
    gone = ChartRecord.objects.filter(dataset=members).order_by("raw_record_id").first()
    RawRecord.objects.filter(pk=gone.raw_record_id).delete()  # archived out of explore
    masked = gone.data["member_id"]

    report = reprotect.rebuild_legacy_records(dataset=members)
    assert (report.rebuilt, report.archived) == (4, 1)
    gone.refresh_from_db()
    assert gone.protection_version == LEGACY_MASKED
    assert gone.data["member_id"] == masked  # lost for good: kept as it is
    # Its encrypted value is still encrypted, and now has its token.
    assert gone.data["national_id"].startswith("enc:v1:")
    assert gone.tokens == {"national_id": token("NID-0001")}
    [warning] = legacy_chart_values(databases=["default"])
    assert "1 chart records" in warning.msg
    # Running it again changes nothing more (resumable, idempotent).
    again = reprotect.rebuild_legacy_records(dataset=members)
    assert (again.rebuilt, again.archived) == (0, 1)
    # Deleted, not archived: no partition to restore.
    assert (again.restore, again.unplaced) == ([], 1)


def test_a_record_whose_raw_record_was_archived_is_rebuilt_once_its_partition_is_restored(
    members, land, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    january = date(2024, 1, 1)
    with connection.cursor() as cursor:
        create_partition(RAW_RECORDS, cursor, january)
    old = land(members, [member(number) for number in range(1, 4)])
    received = datetime(2024, 1, 15, 12, tzinfo=UTC)
    LandingBatch.objects.filter(pk=old[0].batch_id).update(received_at=received)
    RawRecord.objects.filter(batch_id=old[0].batch_id).update(received_at=received)
    land(members, [member(number) for number in range(4, 6)])  # this month: stays in explore
    promote_to_chart(dataset=members, triggered_by="test")
    for record in ChartRecord.objects.filter(dataset=members):
        make_legacy(record)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    retention = apply_retention(
        run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test")
    )
    assert retention.status == RunStatus.SUCCEEDED, retention.error
    assert not RawRecord.objects.filter(received_at=received).exists()

    out = io.StringIO()
    call_command("rebuild_chart_values", stdout=out)
    told = out.getvalue()
    assert "Rebuilt 2 chart records" in told
    assert "3 records could not be rebuilt" in told
    assert (
        "  manage.py restore_partition explore.raw_record 2024-01"
        "   # raw_record_2024_01: raw records of 3 of them"
    ) in told
    assert "have their raw record in no archived partition" not in told
    assert ChartRecord.objects.filter(protection_version=LEGACY_MASKED).count() == 3

    call_command("restore_partition", "explore.raw_record", "2024-01", stdout=io.StringIO())
    out = io.StringIO()
    call_command("rebuild_chart_values", stdout=out)
    assert "Rebuilt 3 chart records" in out.getvalue()
    assert "could not be rebuilt" not in out.getvalue()
    records = list(ChartRecord.objects.filter(dataset=members).order_by("raw_record_id"))
    assert [r.protection_version for r in records] == [TYPED_VALUES] * 5
    assert [r.data["member_id"] for r in records] == [1, 2, 3, 4, 5]


def test_a_reprocessed_record_is_rebuilt_from_its_encrypted_correction(members, legacy, run_of):
    record = ChartRecord.objects.filter(dataset=members).order_by("raw_record_id").first()
    keyring = Keyring.from_settings()
    QuarantinedRecord.objects.create(
        dataset=members,
        raw_record_id=record.raw_record_id,
        reasons=[],
        status="reprocessed",
        run=run_of(members),
        chart_record=record,
        corrected_payload={
            "member_id": "101",
            "national_id": keyring.encrypt(
                "NID-FIXED", context=corrected_context(members.pk, "national_id")
            ),
            "joined": "2026-04-01",
        },
    )
    reprotect.rebuild_legacy_records(dataset=members)
    record.refresh_from_db()
    assert record.data["member_id"] == 101 and record.data["joined"] == "2026-04-01"
    assert record.tokens["national_id"] == token("NID-FIXED")


@pytest.fixture
def run_of():
    return lambda dataset: Run.objects.filter(dataset=dataset).first()


def test_the_command_prints_progress_and_what_it_could_not_rebuild(members, legacy, capsys):
    gone = ChartRecord.objects.filter(dataset=members).order_by("raw_record_id").last()
    RawRecord.objects.filter(pk=gone.raw_record_id).delete()
    call_command("rebuild_chart_values", "--dataset", members.slug, "--batch-size", "2")
    out = capsys.readouterr().out
    assert "orders: 2 done, 3 left" in out and "records/s" in out
    assert "Rebuilt 4 chart records" in out
    assert "1 records could not be rebuilt" in out
