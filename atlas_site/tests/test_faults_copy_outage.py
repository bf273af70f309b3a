"""The database connection lost in the middle of a COPY is an outage to retry, not a failure.

A COPY runs on psycopg's own cursor, so losing the server under it (a restart, a
failover, a network reset; here its backend is terminated, as an administrator's
pg_terminate_backend or a shutdown does) raises psycopg's errors (AdminShutdown, an
OperationalError), not Django's. Loads and chart chunk writes must treat them as the
outage they are: the work stays claimable, the task retries, and the retry finishes it
with every record exactly once.
"""

import io

import psycopg
import pytest
from django.db import connection, connections, transaction

from atlas_site.celery import database_outage_retry
from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from chart import services as chart_services
from chart import writing as chart_writing
from chart.models import ChartRecord, QuarantinedRecord
from explore import copy_writer
from explore import services as explore_services
from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import Layer, Run, RunKind, RunStatus, Watermark
from orchestration import dispatch

pytestmark = pytest.mark.django_db(transaction=True)


def terminate_own_backend() -> None:
    """End this thread's database session from another one, as a server shutdown would."""
    pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
            assert cursor.fetchone()[0]
    finally:
        other.close()


def test_the_task_retry_covers_psycopg_errors_raised_past_django():
    retried = database_outage_retry()["autoretry_for"]
    assert retried == DATABASE_OUTAGE_ERRORS
    for error in (psycopg.OperationalError, psycopg.errors.AdminShutdown, psycopg.InterfaceError):
        assert issubclass(error, retried)


LINES = 3000


def test_a_load_that_loses_its_connection_mid_copy_stays_loading_and_its_retry_loads_it(
    customers, settings, monkeypatch
):
    settings.ATLAS_INGEST_STATEMENT_ROWS = 500  # several COPY statements
    monkeypatch.setattr(dispatch, "send_load", lambda batch_id, via="upload", task_id=None: None)
    content = b"id,email,tier\n" + b"".join(
        b"%d,user%d@example.com,gold\n" % (number, number) for number in range(LINES)
    )
    with transaction.atomic():
        batch = explore_services.store_upload(
            dataset=customers, file=io.BytesIO(content), filename="c.csv", actor="tests"
        )
    real_copy_some = copy_writer._copy_some
    statements = []

    def loses_the_server_in_the_third_statement(copy, *args, **kwargs):
        statements.append(1)
        if len(statements) == 3:
            terminate_own_backend()
        return real_copy_some(copy, *args, **kwargs)

    monkeypatch.setattr(copy_writer, "_copy_some", loses_the_server_in_the_third_statement)
    try:
        with pytest.raises(DATABASE_OUTAGE_ERRORS) as lost:
            explore_services.load_batch(batch_id=batch.pk)
        # psycopg's own error, from the COPY: what the task's retry now catches.
        assert isinstance(lost.value, psycopg.OperationalError)
        assert isinstance(lost.value, database_outage_retry()["autoretry_for"])

        # As after any outage: nothing kept, the batch left to the retry, not failed.
        batch.refresh_from_db()
        assert batch.status == BatchStatus.LOADING, batch.error
        assert batch.error == ""
        assert not RawRecord.objects.filter(batch=batch).exists()
        assert Run.objects.get(kind=RunKind.INGEST).status == RunStatus.RUNNING

        monkeypatch.setattr(copy_writer, "_copy_some", real_copy_some)
        run = explore_services.load_batch(batch_id=batch.pk)  # the task's retry
    finally:
        from django.core.files.storage import default_storage

        default_storage.delete(LandingBatch.objects.get(pk=batch.pk).file.name)

    batch.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and batch.status == BatchStatus.LOADED
    lines = RawRecord.objects.filter(batch=batch)
    assert lines.count() == LINES == lines.values("line_number").distinct().count()


def record(number: int) -> dict:
    return {
        "id": str(number),
        "email": f"user{number}@example.com",
        "tier": "bronze" if number % 10 == 0 else "gold",
        "amount": "2.50",
        "ssn": "123-45-6789",
        "signup": "2026-01-02",
        "notes": "",
    }


def rows_then_shutdown(rows):
    rows = iter(rows)
    yield next(rows)
    terminate_own_backend()  # in the middle of the COPY
    yield from rows


def test_a_promotion_that_loses_its_connection_mid_copy_stays_running_and_its_retry_resumes(
    customers, land, monkeypatch
):
    monkeypatch.setenv("ATLAS_PROMOTION_WORKERS", "1")
    raws = land(customers, [record(number) for number in range(1, 501)])
    real_copy = chart_writing.copy_rows
    chart_copies = []

    def loses_the_server_mid_copy(model, columns, rows):
        if model is ChartRecord:
            chart_copies.append(1)
            if len(chart_copies) == 3:  # the third chunk's chart records
                rows = rows_then_shutdown(rows)
        return real_copy(model, columns, rows)

    monkeypatch.setattr(chart_writing, "copy_rows", loses_the_server_mid_copy)
    run = Run.objects.create(
        dataset=customers, kind=RunKind.PROMOTE_CHART, status=RunStatus.QUEUED, triggered_by="t"
    )
    with pytest.raises(DATABASE_OUTAGE_ERRORS) as lost:
        chart_services.promote_to_chart(
            dataset=customers, run=run, triggered_by="t", chunk_size=100
        )
    assert isinstance(lost.value, psycopg.OperationalError)

    # Left running with its two committed chunks, for the retry; not failed.
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING, run.error
    assert run.rows_in == 200
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == raws[199].pk

    monkeypatch.setattr(chart_writing, "copy_rows", real_copy)
    run = chart_services.promote_to_chart(
        dataset=customers, run=run, triggered_by="t", chunk_size=100
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == 500 == run.rows_promoted + run.rows_quarantined
    assert run.rows_quarantined == 50
    promoted = list(ChartRecord.objects.values_list("raw_record_id", flat=True))
    held = list(QuarantinedRecord.objects.values_list("raw_record_id", flat=True))
    assert sorted(promoted + held) == sorted(raw.pk for raw in raws)
