"""Workers and beat say they are alive, and each side evaluates the alerts when the
other went silent: no worker, and beat still tells it; no beat, and a worker does."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from atlas_site.testing.celery_worker import spawn_beat, start_worker
from atlas_site.testing.http_receiver import HttpReceiver
from governance.pipeline.models import AlertChannel, AlertKind, AlertRule, Heartbeat
from orchestration import alerts, liveness

pytestmark = pytest.mark.django_db


def test_a_look_says_alive_and_evaluates_only_when_nobody_did_lately():
    now = timezone.now()
    AlertRule.objects.create(name="beat", kind=AlertKind.BEAT_SILENT, silent_minutes=5)
    evaluation = liveness.look(liveness.WORKER, "celery@a", now=now)
    assert evaluation is not None and evaluation.opened == 1  # never evaluated before
    seen = dict(Heartbeat.objects.values_list("component", "seen_at"))
    assert seen == {"worker": now, alerts.EVALUATED: now}

    # The scheduled evaluation ran a minute ago: nothing more to do here.
    assert liveness.look(liveness.WORKER, "celery@a", now=now + timedelta(minutes=1)) is None
    # It is overdue: this look evaluates.
    later = now + liveness.EVALUATION_OVERDUE + timedelta(seconds=1)
    assert liveness.look(liveness.WORKER, "celery@a", now=later) is not None
    # Nodes gone for a week are forgotten.
    liveness.beat(liveness.WORKER, "celery@old", now=now - timedelta(days=8))
    liveness.look(liveness.WORKER, "celery@a", now=later)
    assert not Heartbeat.objects.filter(node="celery@old").exists()


def webhook_rule(kind: AlertKind, receiver: HttpReceiver) -> AlertRule:
    channel = AlertChannel.objects.create(name="hook", kind="webhook", url=receiver.url)
    rule = AlertRule.objects.create(name=str(kind), kind=kind, silent_minutes=2)
    rule.channels.set([channel])
    return rule


def wait_for_body(receiver: HttpReceiver, timeout: float, log) -> dict:
    deadline = time.monotonic() + timeout
    while not receiver.bodies:
        assert time.monotonic() < deadline, f"no notification within {timeout} s\n{log()[-3000:]}"
        time.sleep(0.2)
    return receiver.bodies[0]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_no_worker_beat_evaluates_and_tells_it(tmp_path):
    receiver = HttpReceiver(path="/hook")
    receiver.start()
    try:
        webhook_rule(AlertKind.WORKER_SILENT, receiver)
        beat = spawn_beat(
            queue=f"atlas-liveness-{uuid.uuid4().hex[:8]}",
            log_path=tmp_path / "beat.log",
            extra_env={"ATLAS_LIVENESS_SECONDS": "1"},
        )
        try:
            body = wait_for_body(receiver, 60, lambda: beat.log)
        finally:
            beat.stop()
    finally:
        receiver.stop()
    assert body["event"] == "opened" and body["summary"] == "no worker has ever been seen"
    assert Heartbeat.objects.filter(component="beat").exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_no_beat_a_worker_evaluates_and_tells_it(tmp_path):
    receiver = HttpReceiver(path="/hook")
    receiver.start()
    try:
        webhook_rule(AlertKind.BEAT_SILENT, receiver)
        with start_worker(
            queue=f"atlas-liveness-{uuid.uuid4().hex[:8]}",
            log_path=tmp_path / "worker.log",
            extra_env={"ATLAS_LIVENESS_SECONDS": "1"},
        ) as worker:
            body = wait_for_body(receiver, 60, lambda: worker.log)
    finally:
        receiver.stop()
    assert body["event"] == "opened"
    assert body["summary"] == "no scheduler (beat) has ever been seen"
    assert Heartbeat.objects.filter(component="worker").exists()
