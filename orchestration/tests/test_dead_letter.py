"""Dead letters: a task that keeps crashing its worker is set aside after a bounded number.

The worker test runs a real prefork worker whose task SIGKILLs the process running
it: acks_late + reject_on_worker_lost put the message back every time, and without
the bound it would be delivered forever.
"""

import time
import uuid

import pytest
from django.core.cache import cache

from atlas_site.testing.celery_worker import start_worker
from explore.models import BatchStatus, LandingBatch
from governance.pipeline.models import DeadLetter, Run, RunKind, RunStatus
from orchestration import dead_letters

FAULT_WORKER_SETTINGS = "atlas_site.testing.fault_worker_settings"


def a_run(dataset, kind=RunKind.PROMOTE_CHART, **extra) -> Run:
    return Run.objects.create(
        dataset=dataset, kind=kind, status=RunStatus.RUNNING, triggered_by="test", **extra
    )


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s\n{log()[-4000:]}"
        time.sleep(0.2)
    return found


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(dataset, steward, client, tmp_path):
    from atlas_site.testing.fault_tasks import crash_worker, succeed

    run = a_run(dataset)
    queue = f"atlas-dead-letter-test-{uuid.uuid4().hex[:8]}"
    with start_worker(
        queue=queue,
        log_path=tmp_path / "worker.log",
        extra_env={"DJANGO_SETTINGS_MODULE": FAULT_WORKER_SETTINGS, "ATLAS_MAX_DELIVERIES": "3"},
        pool="prefork",
        concurrency=1,
    ) as worker:
        result = crash_worker.apply_async((run.pk,), queue=queue)
        letter = wait_for(
            lambda: DeadLetter.objects.filter(task_id=result.id).first(),
            60,
            "no dead letter",
            lambda: worker.log,
        )
        # The message was acknowledged: the worker goes on with the next task, and the
        # crashing one is not delivered again.
        succeed.apply_async((run.pk,), queue=queue)
        wait_for(
            lambda: "fault_tasks.succeed[" in worker.log and "succeeded in" in worker.log,
            30,
            "the next task did not run",
            lambda: worker.log,
        )
        time.sleep(1)  # a re-delivery, if there were one, would come at once (requeued)
        log = worker.log
        assert worker.alive()

    crashes = log.count("exited with 'signal 9 (SIGKILL)'")
    assert crashes == 3, log[-4000:]
    assert log.count(f"crash_worker[{result.id}] received") == 4
    assert DeadLetter.objects.count() == 1
    assert letter.task_name == "atlas_site.testing.fault_tasks.crash_worker"
    assert letter.args == [run.pk] and letter.kwargs == {}
    assert letter.deliveries == 3
    assert letter.queue == queue
    assert "delivery 3 started at" in letter.last_error
    assert "never ended" in letter.last_error
    assert letter.first_seen_at <= letter.last_seen_at
    assert letter.run_id == run.pk
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("dead letter: task atlas_site.testing.fault_tasks.crash_worker")
    assert "crashed its worker 3 times (ATLAS_MAX_DELIVERIES=3)" in run.error
    assert run.finished_at is not None
    # Nothing of the count is left behind.
    assert cache.get(dead_letters.COUNT_KEY.format(result.id)) is None

    # Stewards see it: task, arguments, deliveries, the run it failed, the last error.
    client.force_login(steward)
    page = client.get("/admin/pipeline/deadletter/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "atlas_site.testing.fault_tasks.crash_worker" in content
    assert f"run {run.pk} (failed)" in content
    assert "never ended" in content
    detail = client.get(f"/admin/pipeline/deadletter/{letter.pk}/change/")
    assert detail.status_code == 200
    assert result.id in detail.content.decode()


@pytest.mark.django_db
def test_deliveries_that_end_do_not_count():
    task_id = str(uuid.uuid4())
    first = dead_letters.begin_delivery(task_id=task_id, hostname="w1")
    assert first.number == 1 and first.previous is None
    dead_letters.end_delivery(task_id=task_id)  # finished, failed or retried: not a crash
    again = dead_letters.begin_delivery(task_id=task_id, hostname="w1")
    assert again.number == 1
    crashed = dead_letters.begin_delivery(task_id=task_id, hostname="w2")
    assert crashed.number == 2
    assert crashed.previous["delivery"] == 1 and crashed.previous["hostname"] == "w1"
    assert crashed.first_seen_at == again.first_seen_at
    dead_letters.end_delivery(task_id=task_id)


def deliver(task, task_id: str, *args):
    """Call the task as the worker does: with a request that has an id."""
    task.push_request(id=task_id, called_directly=False, hostname="test@host", delivery_info={})
    try:
        return task(*args)
    finally:
        task.pop_request()


@pytest.mark.django_db
def test_a_load_past_the_bound_is_not_run_and_fails_its_batch(settings, customers):
    from explore.tasks import load_batch

    settings.ATLAS_MAX_DELIVERIES = 2
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=customers,
        sha256=uuid.uuid4().hex * 2,
        format="csv",
        received_at="2026-11-26T10:00:00Z",
        status=BatchStatus.LOADING,
    )
    load = a_run(customers, kind=RunKind.INGEST, detail={"batch_id": batch.pk})
    task_id = str(uuid.uuid4())
    for _ in range(2):  # two deliveries whose worker died under them
        dead_letters.begin_delivery(task_id=task_id, hostname="gone@host")

    assert deliver(load_batch, task_id, batch.pk, "upload") is None

    letter = DeadLetter.objects.get(task_id=task_id)
    assert (letter.task_name, letter.args, letter.deliveries) == (
        "explore.tasks.load_batch",
        [batch.pk, "upload"],
        2,
    )
    assert letter.run == load
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FAILED
    assert batch.error.startswith("dead letter: task explore.tasks.load_batch")
    load.refresh_from_db()
    assert load.status == RunStatus.FAILED and load.error == batch.error
    assert cache.get(dead_letters.COUNT_KEY.format(task_id)) is None


@pytest.mark.django_db
def test_a_delivery_within_the_bound_runs_and_clears_its_count(settings, dataset):
    from navigate.tasks import promote_to_navigate

    settings.ATLAS_MAX_DELIVERIES = 3
    run = Run.objects.create(
        dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, status=RunStatus.QUEUED, triggered_by="t"
    )
    task_id = str(uuid.uuid4())
    for _ in range(2):
        dead_letters.begin_delivery(task_id=task_id)
    assert deliver(promote_to_navigate, task_id, run.pk) == RunStatus.SUCCEEDED
    assert not DeadLetter.objects.exists()
    assert cache.get(dead_letters.COUNT_KEY.format(task_id)) is None


def test_every_atlas_task_counts_its_deliveries_and_can_wait_for_commit():
    from atlas_site.celery import app

    app.loader.import_default_modules()
    atlas_tasks = [task for name, task in app.tasks.items() if not name.startswith("celery.")]
    assert {"explore.tasks.load_batch", "chart.tasks.promote_to_chart"} <= {
        task.name for task in atlas_tasks
    }
    for task in atlas_tasks:
        assert isinstance(task, dead_letters.AtlasTask), task.name
        assert callable(task.apply_async_on_commit), task.name
