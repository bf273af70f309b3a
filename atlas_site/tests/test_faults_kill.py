"""Faults: a Celery worker SIGKILLed in the middle of ingestion and of chart → navigate.

explore → chart is covered where it lives (chart/tests/test_worker.py: a SIGKILL mid-run
then Redis' redelivery, and a new request after a killed worker). Here:

- ingestion: the worker is killed with its load's rows copied and its transaction not
  yet committed (atlas_site.testing.load_gate holds it there, so the kill does not race
  the load); a restarted worker gets the unacknowledged message back from Redis and
  loads the batch, every line exactly once;
- chart → navigate: the worker is killed while its transaction holds the first metric's
  new facts and waits for the second metric's lock; the restarted worker's redelivery
  recomputes the same facts, each once.

The restarted workers use a short visibility timeout so that Redis hands the killed
worker's message back within seconds (atlas_site.testing.worker_settings).
"""

import io
import time
import uuid
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection, transaction

from atlas_site.testing.celery_worker import database_url, spawn_worker
from atlas_site.testing.load_gate import load_gate
from chart.models import ChartRecord
from chart.services import promote_to_chart
from explore import services as explore_services
from explore.models import BatchStatus, LandingBatch, RawRecord
from explore.services import loading as explore_loading
from governance.pipeline.models import Layer, Run, RunKind, RunStatus, Watermark
from navigate.models import Fact, MetricDefinition

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
# Redis gives an unacknowledged message back once it is this old (seconds).
REDELIVERY_ENV = {"CELERY_BROKER_VISIBILITY_TIMEOUT": "8"}


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s\n{log()[-4000:]}"
        time.sleep(0.05)
    return found


def new_queue(name: str) -> str:
    return f"atlas-fault-{name}-{uuid.uuid4().hex[:8]}"


# --- Ingestion ---------------------------------------------------------------------------

LINES = 6_000


def test_sigkill_mid_load_then_redelivery_loads_every_line_once(customers, settings, tmp_path):
    queue = new_queue("ingest")
    settings.ATLAS_INGEST_QUEUE = queue
    env = {
        "ATLAS_INGEST_QUEUE": queue,
        "ATLAS_INGEST_STATEMENT_ROWS": "500",  # progress after every 500 rows
    }
    content = b"id,email,tier\n" + b"".join(
        b"%d,user%d@example.com,gold\n" % (number, number) for number in range(LINES)
    )
    first = spawn_worker(queue=queue, log_path=tmp_path / "first.log", extra_env=env, name="first")
    second = None
    try:
        first.wait_ready()
        with load_gate(database_url(connection.settings_dict["NAME"]), customers.pk) as held:
            with transaction.atomic():
                batch = explore_services.store_upload(
                    dataset=customers,
                    file=io.BytesIO(content),
                    filename="customers.csv",
                    actor="tests",
                    via="cli",
                )
            assert held.hold_before_commit() == batch.pk
            # Every line went through COPY, in statements of 500 rows, uncommitted.
            progress = cache.get(explore_loading.PROGRESS_KEY.format(batch.pk))
            assert progress["rows"] == LINES
            first.kill()

            # Killed before its commit: the load's one transaction keeps nothing.
            batch.refresh_from_db()
            assert batch.status == BatchStatus.LOADING
            assert not RawRecord.objects.filter(batch=batch).exists()
            killed = Run.objects.get(kind=RunKind.INGEST)
            assert killed.status == RunStatus.RUNNING
            # The orphaned backend holds the batch's loader lock until it notices its
            # client is gone, which it does once it may write its update.
            held.release()
            held.wait_loader_gone()

        second = spawn_worker(
            queue=queue,
            log_path=tmp_path / "second.log",
            extra_env={**env, **REDELIVERY_ENV},
            name="second",
        )
        second.wait_ready()
        wait_for(
            lambda: LandingBatch.objects.get(pk=batch.pk).status != BatchStatus.LOADING,
            90,
            "the redelivered load did not finish",
            lambda: second.log,
        )
    finally:
        first.kill()
        if second is not None:
            second.stop()
        # The workers read stored files from the test settings' MEDIA_ROOT, shared.
        default_storage.delete(batch.file.name)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.LOADED, batch.error
    assert batch.rows_total == LINES == batch.rows_parsed
    lines = RawRecord.objects.filter(batch=batch, received_at=batch.received_at)
    assert lines.count() == LINES
    assert lines.values("line_number").distinct().count() == LINES  # each line once
    killed.refresh_from_db()
    assert killed.status == RunStatus.FAILED and killed.error.startswith("interrupted")
    loaded = Run.objects.exclude(pk=killed.pk).get(kind=RunKind.INGEST)
    assert loaded.status == RunStatus.SUCCEEDED and loaded.rows_in == LINES


# --- chart → navigate ----------------------------------------------------------------------


def customer(number: int) -> dict:
    return {
        "id": str(number),
        "email": f"user{number}@example.com",
        "tier": "gold" if number % 2 else "silver",
        "amount": f"{number % 50}.25",
        "ssn": "123-45-6789",
        "signup": f"2026-{number % 12 + 1:02d}-{number % 28 + 1:02d}",
        "notes": "",
    }


def metric(dataset, slug: str, aggregation: str, value_field: str = "") -> MetricDefinition:
    return MetricDefinition.objects.create(
        dataset=dataset,
        slug=slug,
        name=slug,
        aggregation=aggregation,
        value_field=value_field,
        time_field="signup",
        dimension_fields=["tier"],
    )


def backend_waiting_on_a_lock(database: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0] > 0


def test_sigkill_mid_navigate_promotion_then_redelivery_writes_each_fact_once(
    customers, land, settings, tmp_path, monkeypatch
):
    from django.db import connections

    from navigate.tasks import promote_to_navigate

    monkeypatch.setenv("ATLAS_PROMOTION_WORKERS", "1")
    amounts = metric(customers, "amount-by-tier", "sum", "amount")
    counts = metric(customers, "customers-by-tier", "count")
    records = [customer(number) for number in range(1, 1201)]
    land(customers, records)
    chart_run = promote_to_chart(dataset=customers, triggered_by="test", chunk_size=500)
    assert chart_run.status == RunStatus.SUCCEEDED and chart_run.rows_promoted == 1200
    last_chart_id = ChartRecord.objects.filter(dataset=customers).order_by("-id")[0].pk
    run = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_NAVIGATE,
        status=RunStatus.QUEUED,
        triggered_by="test",
    )
    queue = new_queue("navigate")
    database = connection.settings_dict["NAME"]

    # Another session holds the second metric's row: the promotion writes the first
    # metric's facts in its transaction, then waits there for that lock.
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {MetricDefinition._meta.db_table.join('""')} WHERE id = %s FOR UPDATE",
            [max(amounts.pk, counts.pk)],
        )
    first = spawn_worker(queue=queue, log_path=tmp_path / "first.log", name="first")
    second = None
    try:
        first.wait_ready()
        promote_to_navigate.apply_async((run.pk,), queue=queue)
        wait_for(
            lambda: backend_waiting_on_a_lock(database),
            60,
            "the promotion did not reach the second metric",
            lambda: first.log,
        )
        first.kill()
        blocker.rollback()

        # Killed mid-transaction: no fact, no watermark move; the run is left running.
        assert not Fact.objects.filter(metric__dataset=customers).exists()
        assert not Watermark.objects.filter(
            dataset=customers, layer=Layer.NAVIGATE, position__gt=0
        ).exists()
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING

        second = spawn_worker(
            queue=queue, log_path=tmp_path / "second.log", extra_env=REDELIVERY_ENV, name="second"
        )
        second.wait_ready()
        wait_for(
            lambda: Run.objects.get(pk=run.pk).status in ENDED,
            60,
            "the redelivered promotion did not end",
            lambda: second.log,
        )
    finally:
        blocker.close()
        first.kill()
        if second is not None:
            second.stop()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == run.rows_promoted == 1200
    assert Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE).count() == 1
    assert Watermark.objects.get(dataset=customers, layer=Layer.NAVIGATE).position == last_chart_id
    # Each fact once, with the values of the records, counted once.
    for current in (amounts, counts):
        facts = Fact.objects.filter(metric=current)
        keys = list(facts.values_list("period_start", "dimension_key"))
        assert len(keys) == len(set(keys))
        assert sum(fact.record_count for fact in facts) == 1200
    assert sum(f.value for f in Fact.objects.filter(metric=amounts)) == sum(
        Decimal(r["amount"]) for r in records
    )
    assert sum(f.value for f in Fact.objects.filter(metric=counts)) == 1200
