"""Promotion with real Celery workers: end to end, a worker SIGKILLed mid-run, two at once.

Every test runs against the real PostgreSQL and Redis of the suite, with `celery worker`
processes started on queues of their own (atlas_site.testing.celery_worker). The
promotion tasks reach them through ATLAS_PROMOTION_QUEUE, set both here (where the
first task is sent, after commit) and in the worker (which sends the navigate task).
"""

import re
import time
import uuid
from decimal import Decimal

import pytest

from atlas_site.testing.celery_worker import spawn_worker, start_worker
from chart.models import ChartRecord, QuarantinedRecord
from explore.models import RawRecord
from governance.pipeline.models import GateAction, Layer, Run, RunKind, RunStatus, Watermark
from governance.pipeline.services import request_promotion
from navigate.models import Fact, MetricDefinition

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
# One evaluation process per promotion: the tests' workers share two cores.
WORKER_ENV = {"ATLAS_PROMOTION_WORKERS": "1"}


def row(number: int, **changes) -> dict:
    """A customer record; every tenth one fails its contract (a tier not allowed)."""
    return {
        "id": str(number),
        "email": f"user{number}@example.com",
        "tier": "bronze" if number % 10 == 0 else ("gold" if number % 2 else "silver"),
        "amount": f"{number % 50}.25",
        "ssn": "123-45-6789",
        "signup": f"2026-01-{number % 28 + 1:02d}",
        "notes": "",
        **changes,
    }


def rows(first: int, count: int) -> list[dict]:
    return [row(number) for number in range(first, first + count)]


def new_queue(name: str) -> str:
    return f"atlas-promote-test-{name}-{uuid.uuid4().hex[:8]}"


def wait_for_run(run_id: int, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in ENDED:
            return run
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not end within {timeout} s: {Run.objects.get(pk=run_id)}")


def wait_for_navigate_run(dataset, timeout: float = 30) -> Run:
    """The navigate run a chart run queues: it is made just after the chart run ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.filter(dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE).first()
        if run is not None:
            return wait_for_run(run.pk)
        time.sleep(0.1)
    pytest.fail(f"no navigate run of {dataset.slug} within {timeout} s")


def assert_exactly_once(dataset) -> None:
    """Every raw record of the dataset is in chart or in quarantine, once, never in both."""
    raw_ids = list(RawRecord.objects.filter(dataset=dataset).values_list("id", flat=True))
    in_chart = list(
        ChartRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    quarantined = list(
        QuarantinedRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    assert len(in_chart) == len(set(in_chart)), "a raw record was promoted twice"
    assert len(quarantined) == len(set(quarantined)), "a raw record was quarantined twice"
    assert not set(in_chart) & set(quarantined), "a raw record is in chart and in quarantine"
    assert set(in_chart) | set(quarantined) == set(raw_ids)
    assert len(in_chart) + len(quarantined) == len(raw_ids)


@pytest.fixture(scope="module")
def promotion_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """One solo worker for the tests that need no crash; chunks of 50 records."""
    queue = new_queue("shared")
    with start_worker(
        queue=queue,
        log_path=tmp_path_factory.mktemp("promotion-worker") / "worker.log",
        extra_env={
            **WORKER_ENV,
            "ATLAS_PROMOTION_QUEUE": queue,
            "ATLAS_PROMOTION_CHUNK_SIZE": "50",
        },
    ) as worker:
        yield worker


@pytest.fixture
def promotion_queue(promotion_worker, settings):
    settings.ATLAS_PROMOTION_QUEUE = promotion_worker.queue
    yield promotion_worker
    promotion_worker.wait_idle()


def test_request_promotion_runs_to_chart_and_on_to_navigate(promotion_queue, customers, land):
    metric = MetricDefinition.objects.create(
        dataset=customers,
        slug="amount-by-tier",
        name="Amount by tier",
        aggregation="sum",
        value_field="amount",
        time_field="signup",
        dimension_fields=["tier"],
    )
    land(customers, [*rows(1, 180), "{not json"])

    chart_run = request_promotion(dataset=customers, triggered_by="test")
    chart_run = wait_for_run(chart_run.pk)
    assert chart_run.status == RunStatus.SUCCEEDED, chart_run.error
    assert chart_run.rows_in == 181
    assert chart_run.rows_in == chart_run.rows_promoted + chart_run.rows_quarantined
    assert chart_run.rows_quarantined == 18 + 1  # every tenth record, and the broken line
    assert chart_run.detail["chunks"] == 4  # 181 records in chunks of 50
    assert_exactly_once(customers)

    navigate_run = wait_for_navigate_run(customers)
    assert navigate_run.status == RunStatus.SUCCEEDED, navigate_run.error
    assert navigate_run.triggered_by == f"run {chart_run.pk}"
    facts = Fact.objects.filter(metric=metric)
    assert facts.exists()
    promoted = [r for r in rows(1, 180) if r["tier"] != "bronze"]
    assert sum(fact.record_count for fact in facts) == len(promoted)
    assert sum(fact.value for fact in facts) == sum(Decimal(r["amount"]) for r in promoted)
    assert {fact.dimensions["tier"] for fact in facts} == {"gold", "silver"}

    # The same task delivered again after the run ended promotes nothing again, and asks
    # for nothing: the navigate run was requested in the transaction that ended the chart
    # run, so a delivery that finds it ended knows its follow-up exists.
    from chart.tasks import promote_to_chart

    facts_before = sorted(
        facts.values_list("period_start", "dimension_key", "value", "record_count")
    )
    task_id = str(uuid.uuid4())
    promote_to_chart.apply_async((chart_run.pk, True), queue=promotion_queue.queue, task_id=task_id)
    deadline = time.monotonic() + 30
    while f"[{task_id}] succeeded" not in promotion_queue.log:
        assert time.monotonic() < deadline, promotion_queue.log[-3000:]
        time.sleep(0.1)
    assert list(Run.objects.filter(dataset=customers, kind=RunKind.PROMOTE_NAVIGATE)) == [
        navigate_run
    ]
    again = Run.objects.get(pk=chart_run.pk)
    assert (again.status, again.rows_in, again.finished_at) == (
        RunStatus.SUCCEEDED,
        181,
        chart_run.finished_at,
    )
    assert Run.objects.filter(dataset=customers, kind=RunKind.PROMOTE_CHART).count() == 1
    assert_exactly_once(customers)
    facts_after = Fact.objects.filter(metric=metric)
    assert (
        sorted(facts_after.values_list("period_start", "dimension_key", "value", "record_count"))
        == facts_before
    )


def test_failure_marks_the_run_failed_and_keeps_earlier_runs(promotion_queue, customers, land):
    """Under a 'fail' gate a bad record in the last chunk fails the run; nothing of it stays."""
    customers.gate_action = GateAction.FAIL
    customers.save()
    first = land(customers, [row(n, tier="gold") for n in range(1, 101)])
    good = wait_for_run(
        request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART).pk
    )
    assert good.status == RunStatus.SUCCEEDED, good.error

    land(customers, [*[row(n, tier="gold") for n in range(101, 200)], row(200)])
    bad = wait_for_run(
        request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART).pk
    )
    assert bad.status == RunStatus.FAILED
    assert "gate is 'fail'" in bad.error
    assert f"first failing raw record {RawRecord.objects.order_by('-id')[0].pk}" in bad.error
    assert (bad.rows_in, bad.rows_promoted, bad.rows_quarantined) == (0, 0, 0)
    assert bad.finished_at is not None
    assert not ChartRecord.objects.filter(run=bad).exists()
    assert not QuarantinedRecord.objects.filter(run=bad).exists()
    # The first run's records are intact and the watermark still stands after them.
    assert set(
        ChartRecord.objects.filter(dataset=customers).values_list("raw_record_id", flat=True)
    ) == {record.pk for record in first}
    assert ChartRecord.objects.filter(run=good).count() == 100
    watermark = Watermark.objects.get(dataset=customers, layer=Layer.CHART)
    assert watermark.position == max(record.pk for record in first)


def task_ids(log: str) -> list[str]:
    return re.findall(r"Task chart\.tasks\.promote_to_chart\[([0-9a-f-]+)\] received", log)


def kill_mid_run(worker, dataset, last_raw_id: int) -> Run:
    """Request a promotion, SIGKILL `worker` once a chunk committed; check what it left."""
    worker.wait_ready()
    run = request_promotion(dataset=dataset, triggered_by="test", to_layer=Layer.CHART)
    deadline = time.monotonic() + 60
    while True:
        watermark = Watermark.objects.filter(dataset=dataset, layer=Layer.CHART).first()
        if watermark is not None and watermark.position > 0:
            break
        assert time.monotonic() < deadline, f"no chunk committed:\n{worker.log[-3000:]}"
        time.sleep(0.02)
    worker.kill()

    # Killed mid-run: the run is still 'running', and what was committed is exactly the
    # chunks up to the watermark (a chunk cut short by the kill was rolled back whole).
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    watermark.refresh_from_db()
    assert 0 < watermark.position < last_raw_id
    committed = RawRecord.objects.filter(dataset=dataset, id__lte=watermark.position)
    assert run.rows_in == committed.count() > 0
    assert run.rows_in % 20 == 0
    assert (
        ChartRecord.objects.filter(dataset=dataset).count()
        + QuarantinedRecord.objects.filter(dataset=dataset).count()
        == run.rows_in
    )
    return run


def test_sigkill_mid_run_then_redelivery_resumes_exactly_once(customers, land, settings, tmp_path):
    """A worker SIGKILLed mid-run; Redis redelivers the unacknowledged task to another one.

    The task is acknowledged late, so the killed worker's message stays in Redis'
    unacked set. The second worker has a 10 s visibility timeout (soft and hard time
    limits 6 s and 8 s, below it): once the message is older than that, the worker's
    restore sweep puts it back on the queue and runs it. Nothing re-sends it here.
    """
    raws = land(customers, rows(1, 1500))
    last_raw_id = max(record.pk for record in raws)
    queue = new_queue("crash")
    settings.ATLAS_PROMOTION_QUEUE = queue
    env = {**WORKER_ENV, "ATLAS_PROMOTION_QUEUE": queue}

    first = spawn_worker(
        queue=queue,
        log_path=tmp_path / "first.log",
        extra_env={**env, "ATLAS_PROMOTION_CHUNK_SIZE": "20"},
        name="first",
    )
    second = None
    try:
        run = kill_mid_run(first, customers, last_raw_id)
        [task_id] = task_ids(first.log)

        second = spawn_worker(
            queue=queue,
            log_path=tmp_path / "second.log",
            extra_env={
                **env,
                "ATLAS_PROMOTION_CHUNK_SIZE": "500",
                "CELERY_BROKER_VISIBILITY_TIMEOUT": "10",
                "CELERY_TASK_SOFT_TIME_LIMIT": "6",
                "CELERY_TASK_TIME_LIMIT": "8",
            },
            pool="prefork",
            concurrency=1,
            name="second",
        )
        second.wait_ready()
        run = wait_for_run(run.pk, timeout=45)
        assert task_ids(second.log) == [task_id], second.log[-3000:]
    finally:
        first.kill()
        if second is not None:
            second.stop()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == 1500 == run.rows_promoted + run.rows_quarantined
    assert run.rows_quarantined == 150
    assert Run.objects.filter(dataset=customers).count() == 1
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == last_raw_id
    assert_exactly_once(customers)


def test_two_promotions_at_once_one_runs_the_other_is_skipped(customers, land, settings, tmp_path):
    """Two requests for the same dataset reach two worker processes at the same time."""
    land(customers, rows(1, 1000))
    queue = new_queue("pair")
    settings.ATLAS_PROMOTION_QUEUE = queue
    with start_worker(
        queue=queue,
        log_path=tmp_path / "pair.log",
        extra_env={
            **WORKER_ENV,
            "ATLAS_PROMOTION_QUEUE": queue,
            "ATLAS_PROMOTION_CHUNK_SIZE": "20",
        },
        pool="prefork",
        concurrency=2,
    ):
        runs = [
            request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
            for _ in range(2)
        ]
        ended = [wait_for_run(run.pk) for run in runs]

    by_status = {run.status: run for run in ended}
    assert set(by_status) == {RunStatus.SUCCEEDED, RunStatus.SKIPPED}, [
        (run.status, run.error) for run in ended
    ]
    skipped, done = by_status[RunStatus.SKIPPED], by_status[RunStatus.SUCCEEDED]
    assert "another promotion" in skipped.error
    assert (skipped.rows_in, skipped.rows_promoted, skipped.rows_quarantined) == (0, 0, 0)
    assert done.rows_in == 1000 == done.rows_promoted + done.rows_quarantined
    assert_exactly_once(customers)


def test_the_same_task_delivered_twice_at_once_promotes_once(customers, land, settings, tmp_path):
    """The same run's task reaches two worker processes at once (a duplicate delivery).

    One delivery promotes; the other finds the dataset locked. Every record ends in
    chart or quarantine exactly once and the run ends 'succeeded' with all of them.
    """
    from chart.tasks import promote_to_chart

    raws = land(customers, rows(1, 1000))
    queue = new_queue("twice")
    run = Run.objects.create(
        dataset=customers, kind=RunKind.PROMOTE_CHART, status=RunStatus.QUEUED, triggered_by="t"
    )
    last_raw_id = max(record.pk for record in raws)
    seen: list[tuple[str, int]] = []  # (run status, watermark) while the run was under way
    with start_worker(
        queue=queue,
        log_path=tmp_path / "twice.log",
        extra_env={**WORKER_ENV, "ATLAS_PROMOTION_CHUNK_SIZE": "20"},
        pool="prefork",
        concurrency=2,
    ) as worker:
        for _ in range(2):
            promote_to_chart.apply_async((run.pk, False), queue=queue)
        deadline = time.monotonic() + 60
        while worker.log.count("] succeeded in ") < 2:
            assert time.monotonic() < deadline, worker.log[-3000:]
            watermark = Watermark.objects.filter(dataset=customers, layer=Layer.CHART).first()
            position = watermark.position if watermark else 0
            seen.append((Run.objects.get(pk=run.pk).status, position))
            time.sleep(0.02)
        outcomes = re.findall(
            r"promote_to_chart\[[0-9a-f-]+\] succeeded in [0-9.]+s: '(\w+)'", worker.log
        )

    run.refresh_from_db()
    # The delivery that found the lock taken leaves the run to the other one: it
    # reports the run as it found it (not started yet, running, or already succeeded).
    assert "succeeded" in outcomes, outcomes
    assert len(outcomes) == 2
    assert set(outcomes) <= {"queued", "running", "succeeded"}, outcomes
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.error == ""
    assert run.rows_in == 1000 == run.rows_promoted + run.rows_quarantined
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == last_raw_id
    assert_exactly_once(customers)
    assert not [status for status, _ in seen if status == RunStatus.SKIPPED], (
        "the run being promoted must never read 'skipped'"
    )


def test_a_new_request_after_a_killed_worker_resumes_and_fails_the_killed_run(
    promotion_queue, customers, land, settings, tmp_path
):
    """The killed run's message is not redelivered here; a new request takes over.

    The new run holds the lock, so the killed run cannot be alive: it is marked failed
    as interrupted, and the new run promotes what is left above the watermark.
    """
    raws = land(customers, rows(1, 1500))
    last_raw_id = max(record.pk for record in raws)
    queue = new_queue("killed")
    settings.ATLAS_PROMOTION_QUEUE = queue
    victim = spawn_worker(
        queue=queue,
        log_path=tmp_path / "killed.log",
        extra_env={
            **WORKER_ENV,
            "ATLAS_PROMOTION_QUEUE": queue,
            "ATLAS_PROMOTION_CHUNK_SIZE": "20",
        },
        name="killed",
    )
    try:
        killed = kill_mid_run(victim, customers, last_raw_id)
    finally:
        victim.kill()
    done_before_resume = killed.rows_in

    settings.ATLAS_PROMOTION_QUEUE = promotion_queue.queue
    resumed = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
    resumed = wait_for_run(resumed.pk)
    assert resumed.status == RunStatus.SUCCEEDED, resumed.error
    killed.refresh_from_db()
    assert killed.status == RunStatus.FAILED
    assert killed.error.startswith("interrupted")
    assert killed.rows_in == done_before_resume
    assert resumed.rows_in == 1500 - done_before_resume
    assert killed.rows_in + resumed.rows_in == 1500
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == last_raw_id
    assert_exactly_once(customers)
