"""When the broker may have lost messages, the watchdog sends every waiting item again.

The decision (orchestration.recovery.resend_if_broker_lost) compares the mark the last
look left in the broker's Redis with what Redis says now. The whole path, a worker under
which Redis restarts empty: atlas_site/tests/test_faults_broker_loss.py.
"""

import json
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from atlas_site.celery import app
from explore.models import BatchStatus, LandingBatch
from explore.tasks import load_batch
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from governance.pipeline.services import create_run
from orchestration import recovery

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The tasks sent (name, args, task id), instead of sending them."""
    calls = []

    def send_task(name, args=None, kwargs=None, **options):
        calls.append((name, list(args or []), options.get("task_id")))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


@pytest.fixture
def broker():
    """The broker's Redis, with no mark of this database at the start and the end."""
    client = recovery._broker_client()
    key = recovery.BROKER_MARK_KEY.format(connection.settings_dict["NAME"])
    client.delete(key)
    yield client, key
    client.delete(key)


@pytest.fixture
def waiting(dataset):
    """A batch stored and a promotion queued; a batch loaded and a run ended (not waiting)."""
    batches = [
        LandingBatch.objects.create(
            key=uuid.uuid4(),
            dataset=dataset,
            sha256=uuid.uuid4().hex * 2,
            format="csv",
            received_at=timezone.now(),
            status=status,
        )
        for status in (BatchStatus.STORED, BatchStatus.LOADED)
    ]
    queued = create_run(dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    queued.detail = {"to_layer": Layer.CHART}
    queued.save()
    ended = create_run(dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    Run.objects.filter(pk=ended.pk).update(status=RunStatus.SUCCEEDED)
    return batches[0], queued


def look(django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        return recovery.resend_if_broker_lost()


def mark_of(client, key) -> dict:
    return json.loads(client.get(key))


def test_no_mark_sends_every_stored_batch_and_queued_run_again(
    broker, waiting, sent, django_capture_on_commit_callbacks
):
    client, key = broker
    stored, queued = waiting
    assert look(django_capture_on_commit_callbacks) == {
        "batches": [stored.pk],
        "runs": [queued.pk],
    }
    assert [(name, args) for name, args, _ in sent] == [
        (load_batch.name, [stored.pk, "resent"]),
        ("chart.tasks.promote_to_chart", [queued.pk, False]),
    ]
    # Under the work item's own task id, as the resends of ownerless work.
    assert sent[0][2] == recovery._resend_task_id("batch", stored.pk, stored.created_at)
    assert mark_of(client, key)["run_id"] == client.info("server")["run_id"]


def test_a_fresh_mark_of_the_same_redis_sends_nothing(
    broker, waiting, sent, django_capture_on_commit_callbacks
):
    look(django_capture_on_commit_callbacks)
    sent.clear()
    assert look(django_capture_on_commit_callbacks) == {"batches": [], "runs": []}
    assert sent == []


def test_a_mark_of_another_redis_run_sends_again(
    broker, waiting, sent, django_capture_on_commit_callbacks
):
    client, key = broker
    look(django_capture_on_commit_callbacks)
    client.set(key, json.dumps({**mark_of(client, key), "run_id": "a-redis-before-its-restart"}))
    sent.clear()
    assert look(django_capture_on_commit_callbacks)["batches"] == [waiting[0].pk]
    assert len(sent) == 2


def test_a_mark_nobody_renewed_for_a_while_sends_again(
    broker, waiting, sent, django_capture_on_commit_callbacks
):
    client, key = broker
    look(django_capture_on_commit_callbacks)
    earlier = mark_of(client, key)["at"] - recovery.BROKER_QUIET_SECONDS - 1
    client.set(key, json.dumps({**mark_of(client, key), "at": earlier}))
    sent.clear()
    assert look(django_capture_on_commit_callbacks)["runs"] == [waiting[1].pk]
    assert mark_of(client, key)["at"] > earlier + recovery.BROKER_QUIET_SECONDS


def test_an_unreachable_broker_sends_nothing_and_raises_nothing(
    settings, waiting, sent, django_capture_on_commit_callbacks
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert look(django_capture_on_commit_callbacks) == {"batches": [], "runs": []}
    assert sent == []
