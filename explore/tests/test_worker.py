"""End to end with a real Celery worker: the task is queued after commit and loads the batch."""

import time
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from explore import services
from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import Run, RunKind, RunStatus

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CSV = b"id,name,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n3,Cy\n"


def wait_until_done(batch_id: int, timeout: float = 60) -> LandingBatch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = LandingBatch.objects.get(pk=batch_id)
        if batch.status in (BatchStatus.LOADED, BatchStatus.FAILED):
            return batch
        time.sleep(0.2)
    pytest.fail(f"batch {batch_id} was not loaded within {timeout} s")


def test_ingest_wait_is_loaded_by_the_worker(worker_queue, customers, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(CSV)
    out = StringIO()
    call_command("ingest", "customers", str(path), "--wait", "--timeout", "60", stdout=out)
    batch = LandingBatch.objects.get()
    assert out.getvalue().splitlines() == [
        f"batch {batch.pk}",
        f"batch {batch.pk} loaded: 3 records, 2 read, 1 could not be read (kept with their errors)",
    ]
    assert RawRecord.objects.filter(batch=batch).count() == 3
    run = Run.objects.get(kind=RunKind.INGEST)
    assert run.status == RunStatus.SUCCEEDED and run.triggered_by == "celery (cli)"
    # What --wait asks when a load waits: this worker answers for the load queue.
    from orchestration import dispatch

    assert dispatch.load_queue() == worker_queue["queue"]
    assert len(dispatch.workers_consuming(worker_queue["queue"])) == 1


def test_api_upload_then_status_until_loaded(worker_queue, customers, client, steward):
    token = services.issue_api_token(user=steward, name="e2e", actor=steward)[1]
    response = client.post(
        "/api/datasets/customers/files",
        {"file": SimpleUploadedFile("customers.csv", CSV)},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 202
    batch_id = response.json()["id"]
    wait_until_done(batch_id)
    status = client.get(f"/api/batches/{batch_id}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert status["status"] == "loaded"
    assert (status["rows_total"], status["rows_parsed"], status["rows_failed"]) == (3, 2, 1)


def finished_loads(worker) -> int:
    log = worker["log"].read_text(errors="replace")
    return sum(
        1
        for line in log.splitlines()
        if "explore.tasks.load_batch[" in line and "succeeded" in line
    )


def test_a_task_delivered_twice_loads_once(worker_queue, customers):
    from explore.tasks import load_batch

    finished_before = finished_loads(worker_queue)
    batch = services.store_upload(
        dataset=customers,
        file=SimpleUploadedFile("twice.csv", CSV),
        filename="twice.csv",
        actor="tests",
    )
    # The store queued one task; send the same task again, as a re-delivery would.
    load_batch.apply_async((batch.pk, "redelivery"), queue=worker_queue["queue"])
    wait_until_done(batch.pk)
    deadline = time.monotonic() + 30
    while finished_loads(worker_queue) < finished_before + 2:  # both deliveries ran
        assert time.monotonic() < deadline, "the second delivery did not run"
        time.sleep(0.2)
    assert RawRecord.objects.filter(batch=batch).count() == 3
    assert Run.objects.filter(kind=RunKind.INGEST).count() == 1
