"""A promotion asked for while another holds the dataset is coalesced, never dropped.

The holder here is `promotion_of` itself, as every promotion holds it; the request that
finds the dataset busy runs in another thread (its own database session), as a second
worker would. Tasks go to a queue nobody consumes: each run is carried out here.
"""

import threading
import time
import uuid

import psycopg
import pytest
from django.db import connection, connections

from atlas_site import advisory_locks
from atlas_site.testing.celery_worker import database_url
from chart.models import ChartRecord
from chart.services import promote_to_chart
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from governance.pipeline.services import (
    create_run,
    promotion_of,
    request_navigate_promotion,
    request_promotion,
    skip_run,
)
from navigate.models import Fact, MetricDefinition
from navigate.services import promote_to_navigate
from orchestration import recovery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _nobody_consumes(settings):
    settings.ATLAS_PROMOTION_QUEUE = f"atlas-test-unconsumed-{uuid.uuid4().hex[:8]}"


def row(number: int) -> dict:
    return {
        "id": str(number),
        "email": f"u{number}@example.com",
        "tier": "gold",
        "amount": f"{number % 7}.50",
        "signup": f"2026-02-{number % 28 + 1:02d}",
    }


def in_another_session(function):
    """Run `function` in a thread with its own database session, as another worker."""
    result = {}

    def target():
        try:
            result["value"] = function()
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return result["value"]


def the_follow_up(run: Run) -> Run:
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED, run
    follow_up = Run.objects.get(pk=run.detail["coalesced_into"])
    assert follow_up.status == RunStatus.QUEUED
    return follow_up


def test_a_batch_landed_while_chart_is_busy_reaches_chart_without_another_trigger(customers, land):
    land(customers, [row(n) for n in range(1, 51)])
    holder = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    with promotion_of(holder, dataset=customers, layer=Layer.CHART) as ours:
        assert ours
        # Promote what is there, as the holding promotion does...
        from chart.services import _promote

        _promote(dataset=customers, run=holder, chunk_size=5000)
        # ...and a 1,000-line batch lands meanwhile; its promotion finds the dataset busy.
        late = land(customers, [row(n) for n in range(51, 1051)])
        asked = request_promotion(dataset=customers, triggered_by="batch landed")
        skipped = in_another_session(
            lambda: promote_to_chart(
                dataset=customers, run=Run.objects.get(pk=asked.pk), triggered_by="test"
            )
        )
        assert skipped.status == RunStatus.SKIPPED
        assert Run.objects.get(pk=asked.pk).detail.get("coalesced_into") is None
    follow_up = the_follow_up(asked)
    assert follow_up.detail["to_layer"] == Layer.NAVIGATE
    promote_to_chart(dataset=customers, run=follow_up, triggered_by="test")
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.rows_in) == (RunStatus.SUCCEEDED, 1000)
    promoted = set(
        ChartRecord.objects.filter(dataset=customers).values_list("raw_record_id", flat=True)
    )
    assert {raw.pk for raw in late} <= promoted and len(promoted) == 1050
    # Taken up once: the next holder finds nothing more to take up.
    assert Run.objects.filter(dataset=customers, kind=RunKind.PROMOTE_CHART).count() == 3


def facts_by_sql(metric) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT date_trunc('day', (data ->> 'signup')::date)::date, data ->> 'tier',
                   sum((data ->> 'amount')::numeric), count(*)
              FROM chart.chart_record WHERE dataset_id = %s AND is_current
             GROUP BY 1, 2
            """,
            [metric.dataset_id],
        )
        return {(day, tier): (total, count) for day, tier, total, count in cursor.fetchall()}


def test_chart_records_promoted_while_navigate_is_busy_reach_the_facts(customers, land):
    metric = MetricDefinition.objects.create(
        dataset=customers,
        slug="amount-by-tier",
        name="Amount by tier",
        aggregation="sum",
        value_field="amount",
        time_field="signup",
        grain="day",
        dimension_fields=["tier"],
    )
    land(customers, [row(n) for n in range(1, 101)])
    promote_to_chart(dataset=customers, triggered_by="test")
    promote_to_navigate(dataset=customers, triggered_by="test")
    holder = create_run(dataset=customers, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")
    with promotion_of(holder, dataset=customers, layer=Layer.NAVIGATE) as ours:
        assert ours
        # A navigate run that has read its snapshot; a chart run finishes meanwhile and
        # asks for navigate, which finds the dataset busy.
        land(customers, [{**row(n), "tier": "silver"} for n in range(101, 300)])
        in_another_session(lambda: promote_to_chart(dataset=customers, triggered_by="test"))
        asked = request_navigate_promotion(dataset=customers, triggered_by="chart run")
        skipped = in_another_session(
            lambda: promote_to_navigate(
                dataset=customers, run=Run.objects.get(pk=asked.pk), triggered_by="test"
            )
        )
        assert skipped.status == RunStatus.SKIPPED
    follow_up = the_follow_up(asked)
    promote_to_navigate(dataset=customers, run=follow_up, triggered_by="test")
    assert Run.objects.get(pk=follow_up.pk).status == RunStatus.SUCCEEDED
    facts = {
        (fact.period_start, fact.dimensions["tier"]): (fact.value, fact.record_count)
        for fact in Fact.objects.filter(metric=metric)
    }
    assert facts == facts_by_sql(metric)
    assert {tier for _, tier in facts} == {"gold", "silver"}


def ask_for_chart(dataset) -> Run:
    return request_promotion(dataset=dataset, triggered_by="batch landed")


def promote_in_another_session(run: Run) -> Run:
    return in_another_session(
        lambda: promote_to_chart(
            dataset=run.dataset, run=Run.objects.get(pk=run.pk), triggered_by="test"
        )
    )


def test_a_holder_that_fails_still_takes_up_the_requests_skipped_meanwhile(customers):
    holder = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    asked = ask_for_chart(customers)
    with (
        pytest.raises(RuntimeError, match="the promotion broke"),
        promotion_of(holder, dataset=customers, layer=Layer.CHART) as ours,
    ):
        assert ours
        assert promote_in_another_session(asked).status == RunStatus.SKIPPED
        raise RuntimeError("the promotion broke")
    the_follow_up(asked)


class RowGate:
    """Another session's lock on one run's row: whoever updates the row waits for it."""

    def __init__(self, run: Run):
        url = database_url(connection.settings_dict["NAME"])
        self.connection = psycopg.connect(url)
        self.observer = psycopg.connect(url, autocommit=True)
        self.connection.execute('SELECT 1 FROM "pipeline"."run" WHERE id = %s FOR UPDATE', [run.pk])

    def wait_until_waited_on(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [self.connection.info.backend_pid],
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "nobody waited on the row"
            time.sleep(0.02)

    def close(self) -> None:
        self.connection.close()
        self.observer.close()


def test_a_request_whose_skip_commits_after_the_holder_let_go_takes_itself_up(customers):
    """The race: the request finds the lock held, the holder lets go and takes up what was
    skipped (nothing yet), then the request's skip commits. The request looks again."""
    holder = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    asked = ask_for_chart(customers)
    gate = RowGate(asked)  # holds the request's skip back until the holder has let go
    outcome = {}
    requester = threading.Thread(
        target=lambda: outcome.update(run=promote_in_another_session(asked)), daemon=True
    )
    try:
        with promotion_of(holder, dataset=customers, layer=Layer.CHART) as ours:
            assert ours
            requester.start()
            gate.wait_until_waited_on()  # the lock was found held; the skip waits
        # The holder let go and took up what was committed: not this skip yet.
        assert Run.objects.filter(dataset=customers).count() == 2
        gate.connection.rollback()
        requester.join(30)
    finally:
        gate.close()
    assert outcome["run"].status == RunStatus.SKIPPED
    follow_up = the_follow_up(asked)
    assert follow_up.triggered_by == f"skipped runs {asked.pk}"


def test_the_watchdog_takes_up_skips_nobody_took_up_once_the_dataset_is_free(customers):
    """The holder was killed before letting go (no finally runs under SIGKILL), or its
    take-up failed: every worker's watchdog sweeps such skips up."""
    forgotten = create_run(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    skip_run(forgotten, f"another promotion of {customers.slug} to chart is running")
    url = database_url(connection.settings_dict["NAME"])
    with psycopg.connect(url, autocommit=True) as holder:
        # A promotion holds the dataset: it takes the skip up itself as it lets go.
        holder.execute(
            "SELECT pg_advisory_lock(%s, %s)", [advisory_locks.PROMOTE_CHART, customers.pk]
        )
        assert "follow_ups" not in recovery.watch()
        assert "coalesced_into" not in Run.objects.get(pk=forgotten.pk).detail
    follow_up_ids = recovery.watch()["follow_ups"]
    assert follow_up_ids == [the_follow_up(forgotten).pk]
    assert "follow_ups" not in recovery.watch()  # taken up once
