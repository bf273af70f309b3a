"""Work whose owner is gone is sent again at once, by every worker's watchdog or by the tick.

The end-to-end proof, with workers SIGKILLed mid-load and mid-promotion, is
atlas_site/tests/test_faults_recovery.py; here the decisions, without a worker.
"""

import uuid

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from atlas_site import advisory_locks, ownership
from atlas_site.celery import app
from chart.tasks import promote_to_chart, reprotect_chart
from explore.models import BatchStatus, LandingBatch
from explore.tasks import load_batch
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from navigate.tasks import promote_to_navigate
from orchestration import watchdog
from orchestration.recovery import resend_ownerless_work, tick

LOAD_TASK = load_batch.name
PROMOTE_CHART_TASK = promote_to_chart.name
PROMOTE_NAVIGATE_TASK = promote_to_navigate.name
REPROTECT_TASK = reprotect_chart.name

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The tasks sent (by name), instead of sending them."""
    calls = []

    def send_task(name, args=None, kwargs=None, **options):
        calls.append((name, list(args or []), options))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


@pytest.fixture(autouse=True)
def _fresh_marks():
    yield
    cache.delete(watchdog.TICK_KEY)


def forget(namespace: int, *keys: int) -> None:
    from django.db import connection

    database = connection.settings_dict["NAME"]
    cache.delete_many(
        [
            template.format(database, namespace, key)
            for key in keys
            for template in (ownership.HEARTBEAT_KEY, ownership.RESENT_KEY)
        ]
    )


def a_batch(dataset, status) -> LandingBatch:
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        sha256=uuid.uuid4().hex * 2,
        format="csv",
        received_at=timezone.now(),
        status=status,
    )
    forget(advisory_locks.LOAD_BATCH, batch.pk)
    return batch


def a_run(dataset, kind, status=RunStatus.RUNNING, **detail) -> Run:
    run = Run.objects.create(
        dataset=dataset, kind=kind, status=status, triggered_by="t", detail=detail
    )
    forget(advisory_locks.RUN, run.pk)
    return run


def test_running_work_whose_owner_is_gone_is_sent_again_at_once(
    dataset, sent, settings, django_capture_on_commit_callbacks
):
    settings.ATLAS_PROMOTION_QUEUE = "promotions"
    settings.ATLAS_INGEST_QUEUE = "loads"
    loading = a_batch(dataset, BatchStatus.LOADING)
    a_batch(dataset, BatchStatus.STORED)  # waiting, not owned by anyone yet: the tick's
    chart = a_run(dataset, RunKind.PROMOTE_CHART, to_layer=Layer.CHART)
    onwards = a_run(dataset, RunKind.PROMOTE_CHART, to_layer=Layer.NAVIGATE)
    navigate = a_run(dataset, RunKind.PROMOTE_NAVIGATE)
    reprotect = a_run(dataset, RunKind.REPROTECT)
    a_run(dataset, RunKind.PROMOTE_CHART, status=RunStatus.QUEUED)
    a_run(dataset, RunKind.INGEST)  # goes with its batch
    alive = a_run(dataset, RunKind.PROMOTE_CHART)
    holder = connections.create_connection("default")  # a live worker holds its run's lock
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [advisory_locks.RUN, alive.pk])
        with django_capture_on_commit_callbacks(execute=True):
            resent = resend_ownerless_work()
        with django_capture_on_commit_callbacks(execute=True):
            again = resend_ownerless_work()
    finally:
        holder.close()

    assert resent == {
        "batches": [loading.pk],
        "runs": [chart.pk, onwards.pk, navigate.pk, reprotect.pk],
    }
    assert again == {"batches": [], "runs": []}  # sent, not taken up yet: not again
    by_name = {(name, *args): options for name, args, options in sent}
    assert set(by_name) == {
        (LOAD_TASK, loading.pk, "resent"),
        (PROMOTE_CHART_TASK, chart.pk, False),
        (PROMOTE_CHART_TASK, onwards.pk, True),
        (PROMOTE_NAVIGATE_TASK, navigate.pk),
        (REPROTECT_TASK, reprotect.pk),
    }
    assert by_name[(LOAD_TASK, loading.pk, "resent")]["queue"] == "loads"
    assert by_name[(PROMOTE_NAVIGATE_TASK, navigate.pk)]["queue"] == "promotions"
    task_ids = [options["task_id"] for options in by_name.values()]
    assert len(set(task_ids)) == len(task_ids)


def test_work_taken_up_and_lost_again_is_sent_again_under_the_same_task_id(
    dataset, sent, django_capture_on_commit_callbacks
):
    """The same id each time, so that deliveries that kill their worker add up to a
    dead letter instead of being sent for ever."""
    run = a_run(dataset, RunKind.PROMOTE_NAVIGATE)
    with django_capture_on_commit_callbacks(execute=True):
        assert resend_ownerless_work()["runs"] == [run.pk]
    with ownership.owned(advisory_locks.RUN, run.pk):  # a delivery takes it up, and dies
        pass
    with django_capture_on_commit_callbacks(execute=True):
        assert resend_ownerless_work()["runs"] == [run.pk]
    assert len(sent) == 2
    assert sent[0][2]["task_id"] == sent[1][2]["task_id"]


def test_the_tick_sends_ownerless_work_too(dataset, sent, django_capture_on_commit_callbacks):
    run = a_run(dataset, RunKind.PROMOTE_NAVIGATE)
    with django_capture_on_commit_callbacks(execute=True):
        tick(now=timezone.now())
    assert [(name, args) for name, args, _ in sent] == [(PROMOTE_NAVIGATE_TASK, [run.pk])]


def test_one_watchdog_acts_per_period(dataset, sent, django_capture_on_commit_callbacks):
    run = a_run(dataset, RunKind.PROMOTE_NAVIGATE)
    with django_capture_on_commit_callbacks(execute=True):
        first = watchdog.tick(seconds=30)
        second = watchdog.tick(seconds=30)  # another worker's, within the period
    assert first == {"batches": [], "runs": [run.pk]}
    assert second is None
    cache.delete(watchdog.TICK_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        assert watchdog.tick(seconds=30) == {"batches": [], "runs": []}


def test_the_watchdog_can_be_turned_off(settings):
    settings.ATLAS_WATCHDOG_SECONDS = 0
    assert watchdog.start(hostname="test") is None
