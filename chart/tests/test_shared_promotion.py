"""A promotion shared by several workers (chart.shared_promotion).

Two helpers in threads of this process (each with its own database session) share a
run with its owner; the outcome must equal a one-worker promotion of the same records:
every record once, the same records current and superseded by the same successors, the
same duplicates of a unique field quarantined. The proof with real workers on two
processes, each killed once, is in test_shared_promotion_workers.py.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chart import services
from chart.chunks import ChunkReader
from chart.models import ChartRecord, QuarantinedRecord
from chart.shared_promotion import (
    CHUNK_ATTEMPTS,
    DONE_ELSEWHERE,
    NOT_YET,
    ChunkKeepsFailingError,
    claim_chunk,
    claimant_name,
    commit_chunk,
    judge,
)
from explore.models import RawRecord
from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import (
    ChunkStatus,
    Dataset,
    DatasetField,
    GateAction,
    Run,
    RunChunk,
    RunKind,
    RunStatus,
)
from governance.pipeline.services import create_run, run_lock

pytestmark = pytest.mark.django_db(transaction=True)


def make_dataset(slug: str, *, gate: str = GateAction.QUARANTINE) -> Dataset:
    """Customers keyed by id, whose e-mail address is unique among current records."""
    confidential = ClassificationLevel.objects.get(name="confidential")
    dataset = Dataset.objects.create(slug=slug, name=slug, business_key=["id"], gate_action=gate)
    specs = [
        {"name": "id", "data_type": "integer", "required": True},
        {"name": "email", "data_type": "email", "classification": confidential, "unique": True},
        {"name": "tier", "data_type": "enum", "allowed_values": ["gold", "silver"]},
        {"name": "amount", "data_type": "decimal", "minimum": 0},
        {"name": "notes", "data_type": "string"},
    ]
    for position, spec in enumerate(specs):
        DatasetField.objects.create(dataset=dataset, position=position, **spec)
    return dataset


def records(count: int) -> list[dict | str]:
    """Keys arriving again in later chunks, addresses shared by other keys, bad lines."""
    out: list[dict | str] = []
    for number in range(1, count + 1):
        if number % 97 == 0:
            out.append("{not json")
            continue
        key = number % (count // 3) + 1  # each key about three times, far apart
        # An address comes back with its own key (a newer version of that record, not a
        # duplicate), or now and then with the next key's (a duplicate).
        mail = key if number % 7 else key + 1
        out.append(
            {
                "id": str(key),
                "email": f"user{mail}@example.com",
                "tier": "bronze" if number % 10 == 0 else ("gold" if number % 2 else "silver"),
                "amount": f"{number % 50}.25",
                "notes": f"card 4111 1111 1111 1111 ref {number}" if number % 13 == 0 else "",
            }
        )
    return out


def outcome(dataset: Dataset) -> dict:
    """What a promotion decided, by raw record (its place among the dataset's raw records,
    in landing order): comparable between datasets that landed the same records."""
    raw_ids = RawRecord.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)
    line_of = {raw_id: place for place, raw_id in enumerate(raw_ids)}
    chart = list(
        ChartRecord.objects.filter(dataset=dataset).values_list(
            "id", "raw_record_id", "business_key", "is_current", "superseded_by_id", "issues"
        )
    )
    line_of_chart = {pk: line_of[raw] for pk, raw, *_ in chart}
    promoted = sorted(
        (
            line_of[raw],
            key,
            current,
            line_of_chart.get(successor),
            sorted(str(issue) for issue in issues),
        )
        for _, raw, key, current, successor, issues in chart
    )
    quarantined = sorted(
        (line_of[raw], sorted(str(reason) for reason in reasons))
        for raw, reasons in QuarantinedRecord.objects.filter(dataset=dataset).values_list(
            "raw_record_id", "reasons"
        )
    )
    lines = [line for line, *_ in promoted] + [line for line, _ in quarantined]
    assert len(lines) == len(set(lines)), "a raw record landed twice"
    assert len(lines) == len(line_of), "a raw record was lost"
    return {"chart": promoted, "quarantine": quarantined}


def run_counts(run: Run) -> tuple:
    run.refresh_from_db()
    return (
        run.status,
        run.rows_in,
        run.rows_promoted,
        run.rows_quarantined,
        run.detail.get("superseded"),
        run.detail.get("failing"),
        run.detail.get("pii_findings"),
    )


@pytest.fixture
def threaded_helpers(monkeypatch):
    """Helpers asked for by a shared promotion run in threads of this process."""
    threads: list[threading.Thread] = []
    committed: list[int] = []

    def send(run, helpers):
        def help_once():
            try:
                committed.append(
                    services.help_promote_to_chart(
                        run=Run.objects.get(pk=run.pk), chunk_size=20, chunk_bytes=1 << 20
                    )
                )
            finally:
                connection.close()

        for _ in range(helpers):
            thread = threading.Thread(target=help_once)
            thread.start()
            threads.append(thread)

    monkeypatch.setattr("orchestration.dispatch.send_promotion_helpers", send)
    yield committed
    for thread in threads:
        thread.join(timeout=60)


def test_a_shared_promotion_decides_as_one_worker_does(land, threaded_helpers):
    data = records(1200)
    alone, shared = make_dataset("alone"), make_dataset("shared")
    land(alone, data)
    land(shared, data)
    # A second landing after the first promotion: supersession and uniqueness across runs.
    more = records(300)

    one = services.promote_to_chart(dataset=alone, triggered_by="test", chunk_size=20, helpers=0)
    many = services.promote_to_chart(dataset=shared, triggered_by="test", chunk_size=20, helpers=2)
    assert many.status == RunStatus.SUCCEEDED, many.error
    assert many.detail["shared_by"] == 3
    assert sum(threaded_helpers) > 0, "the helpers committed nothing"
    assert run_counts(many)[1:] == run_counts(one)[1:]
    chunks = RunChunk.objects.filter(run=many)
    assert many.detail["chunks"] == chunks.count() == one.detail["chunks"]
    assert not chunks.exclude(status=ChunkStatus.DONE).exists()
    decided = outcome(shared)
    assert decided == outcome(alone)
    # The records make both decisions that depend on the order of chunks: keys superseded
    # across chunks, and values of the unique field quarantined as duplicates.
    assert one.detail["superseded"] > 100
    duplicates = [
        line for line, reasons in decided["quarantine"] if "already holds" in str(reasons)
    ]
    assert len(duplicates) > 100

    land(alone, more)
    land(shared, more)
    one = services.promote_to_chart(dataset=alone, triggered_by="test", chunk_size=20, helpers=0)
    many = services.promote_to_chart(dataset=shared, triggered_by="test", chunk_size=20, helpers=1)
    assert run_counts(many)[1:] == run_counts(one)[1:]
    assert outcome(shared) == outcome(alone)


def test_a_chunk_commits_in_raw_order_and_once(land, customers):
    """A chunk waits for the one before it; a second claimant of a chunk drops its copy."""
    land(customers, [{"id": str(n), "tier": "gold"} for n in range(1, 61)])
    run = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    evaluator, rule_book = services.prepare_judging(customers)
    reader = ChunkReader(dataset_id=customers.pk, chunk_size=20, chunk_bytes=1 << 20)
    me = claimant_name()
    first = claim_chunk(run=run, reader=reader, claimant=me)
    second = claim_chunk(run=run, reader=reader, claimant=me)
    assert (first.seq, second.seq) == (0, 1)
    assert second.after_id == first.last_id
    for chunk in (first, second):
        chunk.judged = judge(evaluator, chunk.raws)
    kwargs = {"dataset": customers, "run": run, "rule_book": rule_book, "unique_fields": []}
    with run_lock(run) as owned:
        assert owned
        assert commit_chunk(chunk=second, claimant=me, **kwargs) == NOT_YET
        assert not ChartRecord.objects.filter(dataset=customers).exists()
        # The first chunk's lease runs out: another worker claims it again and commits it.
        RunChunk.objects.filter(pk=first.pk).update(
            lease_until=timezone.now() - timedelta(seconds=1)
        )
        again = claim_chunk(run=run, reader=reader, claimant="other:1", below_seq=second.seq)
        assert (again.seq, again.after_id, again.last_id) == (0, first.after_id, first.last_id)
        assert [raw[0] for raw in again.raws] == [raw[0] for raw in first.raws]
        again.judged = judge(evaluator, again.raws)
        assert commit_chunk(chunk=again, claimant="other:1", **kwargs) == "committed"
        assert commit_chunk(chunk=first, claimant=me, **kwargs) == DONE_ELSEWHERE
        assert commit_chunk(chunk=second, claimant=me, **kwargs) == "committed"
    assert ChartRecord.objects.filter(dataset=customers).count() == 40
    chunk = RunChunk.objects.get(pk=first.pk)
    assert (chunk.status, chunk.attempts, chunk.committed_by) == ("done", 2, "other:1")


def test_a_chunk_that_keeps_killing_its_claimants_fails_the_run(land, customers):
    land(customers, [{"id": str(n), "tier": "gold"} for n in range(1, 31)])
    run = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    reader = ChunkReader(dataset_id=customers.pk, chunk_size=20, chunk_bytes=1 << 20)
    chunk = claim_chunk(run=run, reader=reader, claimant="dead:1")
    # Its claimants died one after another: each time its lease ran out, another took it.
    RunChunk.objects.filter(pk=chunk.pk).update(
        attempts=CHUNK_ATTEMPTS, lease_until=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(
        ChunkKeepsFailingError, match=f"ids {chunk.after_id + 1} to {chunk.last_id}"
    ):
        claim_chunk(run=run, reader=reader, claimant="next:1")


def test_a_helper_leaves_a_run_whose_owner_is_gone(land, customers, settings):
    """No owner for a lease's time: the helper's worker is freed to take up the run's task."""
    settings.ATLAS_PROMOTION_CHUNK_LEASE_SECONDS = 0.3
    land(customers, [{"id": str(n), "tier": "gold"} for n in range(1, 61)])
    run = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    run.refresh_from_db()
    assert services.help_promote_to_chart(run=run, chunk_size=20, chunk_bytes=1 << 20) == 0
    assert not ChartRecord.objects.filter(dataset=customers).exists()
    # What it judged and could not commit is anyone's at once.
    chunks = RunChunk.objects.filter(run=run)
    assert chunks.exists()
    assert not chunks.filter(lease_until__gt=timezone.now()).exists()
