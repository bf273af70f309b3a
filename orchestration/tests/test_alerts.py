"""Alerts: a rule fires once, repeats only after its interval, resolves; deliveries by a
real SMTP server and a real HTTP receiver, retried after a receiver was down; messages
carry slugs, counts and a link, never a record's value."""

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError
from django.utils import timezone

from chart.services import promote_to_chart
from governance.pipeline.models import (
    Alert,
    AlertChannel,
    AlertKind,
    AlertRule,
    AlertState,
    DeadLetter,
    DeliveryStatus,
    Notification,
    Run,
    RunKind,
    RunStatus,
)
from orchestration import alerts, tasks

pytestmark = pytest.mark.django_db

PLANTED = "ZEBRA-7731-PLANTED"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 5},
        }
    }
    yield inbox
    controller.stop()


class Receiver:
    """An HTTP receiver in a thread, started and stopped at will on the same port."""

    def __init__(self):
        self.port = free_port()
        self.bodies: list[dict] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self):
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if self.path == "/moved":  # sends the request on to another address
                    self.send_response(307)
                    self.send_header("Location", f"http://localhost:{self.server.server_port}/hook")
                    self.end_headers()
                    return
                bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def failed_run(dataset, at):
    run = Run.objects.create(dataset=dataset, kind=RunKind.INGEST, status=RunStatus.FAILED)
    Run.objects.filter(pk=run.pk).update(created_at=at, finished_at=at)
    return run


def test_a_rule_fires_once_repeats_after_its_interval_and_resolves(smtp, receiver, dataset):
    receiver.start()
    mail = AlertChannel.objects.create(name="ops", kind="email", recipients=["ops@example.com"])
    hook = AlertChannel.objects.create(name="hook", kind="webhook", url=receiver.url)
    rule = AlertRule.objects.create(
        name="ingest failed", kind=AlertKind.RUN_FAILED, repeat_interval=timedelta(hours=1)
    )
    rule.channels.set([mail, hook])
    now = timezone.now()
    failed_run(dataset, now - timedelta(minutes=5))

    first = alerts.evaluate_alerts(now=now)
    assert (first.opened, first.repeated, first.sent, first.failed) == (1, 0, 2, 0)
    alert = Alert.objects.get()
    assert alert.state == AlertState.OPEN and alert.dataset == dataset
    assert len(smtp.messages) == 1 and len(receiver.bodies) == 1
    assert b"orders" in smtp.messages[0] and b"ingest" in smtp.messages[0]
    assert f"/admin/pipeline/alert/{alert.pk}/change/".encode() in smtp.messages[0]
    body = receiver.bodies[0]
    assert body["event"] == "opened" and body["dataset"] == "orders"
    assert body["link"].endswith(f"/admin/pipeline/alert/{alert.pk}/change/")

    # Within the interval: nothing more is sent.
    again = alerts.evaluate_alerts(now=now + timedelta(minutes=59))
    assert (again.opened, again.repeated, again.sent) == (0, 0, 0)
    assert Notification.objects.count() == 2

    # After it: once more.
    later = alerts.evaluate_alerts(now=now + timedelta(minutes=61))
    assert (later.repeated, later.sent) == (1, 2)
    assert receiver.bodies[-1]["event"] == "repeat"
    assert b"STILL FIRING" in smtp.messages[-1]
    assert alerts.evaluate_alerts(now=now + timedelta(minutes=62)).sent == 0

    # A later ingest succeeds: resolved, with a resolved message.
    ok = Run.objects.create(dataset=dataset, kind=RunKind.INGEST, status=RunStatus.SUCCEEDED)
    Run.objects.filter(pk=ok.pk).update(finished_at=now)
    resolved = alerts.evaluate_alerts(now=now + timedelta(minutes=70))
    assert (resolved.resolved, resolved.sent) == (1, 2)
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.resolved_at is not None
    assert receiver.bodies[-1]["event"] == "resolved"
    assert b"RESOLVED" in smtp.messages[-1]
    assert len(smtp.messages) == 3 and len(receiver.bodies) == 3
    assert set(Notification.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_a_receiver_down_fails_and_a_later_pass_delivers(receiver, settings):
    hook = AlertChannel.objects.create(
        name="slack", kind="webhook", url=receiver.url, slack_compatible=True
    )
    rule = AlertRule.objects.create(name="dead letters", kind=AlertKind.DEAD_LETTERS)
    rule.channels.set([hook])
    now = timezone.now()
    DeadLetter.objects.create(
        task_id="t1", task_name="x", deliveries=3, first_seen_at=now, last_seen_at=now
    )

    result = tasks.evaluate_alerts()  # the receiver is down: recorded, nothing raised
    assert (result["opened"], result["sent"], result["failed"]) == (1, 0, 1)
    note = Notification.objects.get()
    assert note.status == DeliveryStatus.FAILED and note.attempts == 1
    assert note.last_error == "ConnectionRefusedError"
    assert note.target == f"127.0.0.1:{receiver.port}"
    assert note.next_attempt_at > timezone.now()

    receiver.start()
    # Before its backoff has passed it waits; after it, it is delivered.
    assert alerts.deliver_due(now=note.next_attempt_at - timedelta(seconds=1)) == (0, 0)
    assert alerts.deliver_due(now=note.next_attempt_at) == (1, 0)
    note.refresh_from_db()
    assert note.status == DeliveryStatus.SENT and note.attempts == 2 and note.last_error == ""
    assert receiver.bodies == [{"text": receiver.bodies[0]["text"]}]
    assert "1 dead letter(s)" in receiver.bodies[0]["text"]


def test_webhooks_reach_only_hosts_an_operator_listed(receiver, settings):
    # A URL a steward types is fetched by the worker: only listed hosts, no redirects.
    settings.ATLAS_WEBHOOK_HOSTS = ["hooks.example.com"]
    refused = AlertChannel(name="inside", kind="webhook", url="http://169.254.169.254/latest")
    with pytest.raises(ValidationError, match=r"'169\.254\.169\.254' is not a host webhooks"):
        refused.full_clean()
    AlertChannel(name="listed", kind="webhook", url="https://hooks.example.com/x").full_clean()

    settings.ATLAS_WEBHOOK_HOSTS = ["127.0.0.1"]
    receiver.start()
    moved = AlertChannel.objects.create(
        name="moved", kind="webhook", url=receiver.url.replace("/hook", "/moved")
    )
    unlisted_later = AlertChannel.objects.create(name="later", kind="webhook", url=receiver.url)
    rule = AlertRule.objects.create(name="dead letters", kind=AlertKind.DEAD_LETTERS)
    rule.channels.set([moved, unlisted_later])
    now = timezone.now()
    DeadLetter.objects.create(
        task_id="t1", task_name="x", deliveries=3, first_seen_at=now, last_seen_at=now
    )
    # The receiver sends the first channel's request on to localhost: not followed.
    result = tasks.evaluate_alerts()
    assert (result["sent"], result["failed"]) == (1, 1)
    errors = dict(Notification.objects.values_list("channel__name", "last_error"))
    assert errors == {"moved": "HTTP 307", "later": ""}
    assert len(receiver.bodies) == 1

    # Taken off the list after the channel was saved: refused at sending, nothing sent.
    settings.ATLAS_WEBHOOK_HOSTS = ["hooks.example.com"]
    Notification.objects.update(status=DeliveryStatus.FAILED, next_attempt_at=now)
    alerts.deliver_due(now=timezone.now())
    errors = dict(Notification.objects.values_list("channel__name", "last_error"))
    assert errors == {
        "moved": "WebhookHostNotAllowedError",
        "later": "WebhookHostNotAllowedError",
    }
    assert len(receiver.bodies) == 1


def test_backoff_grows_and_is_bounded():
    assert [alerts.backoff(n).total_seconds() / 60 for n in (1, 2, 3, 7, 20)] == [
        1,
        2,
        4,
        60,
        60,
    ]


def test_messages_carry_counts_and_names_never_a_record_value(smtp, receiver, customers, land):
    receiver.start()
    mail = AlertChannel.objects.create(name="ops", kind="email", recipients=["ops@example.com"])
    hook = AlertChannel.objects.create(name="hook", kind="webhook", url=receiver.url)
    rule = AlertRule.objects.create(
        name="quarantine", kind=AlertKind.QUARANTINE_SHARE, threshold_percent=10
    )
    rule.channels.set([mail, hook])
    land(
        customers,
        [
            {"id": 1, "tier": "gold", "notes": "fine"},
            {"id": 2, "tier": PLANTED, "notes": PLANTED},  # not an allowed tier: quarantined
        ],
    )
    promote_to_chart(dataset=customers, triggered_by="t")

    result = alerts.evaluate_alerts()
    assert (result.opened, result.sent) == (1, 2)
    alert = Alert.objects.get()
    assert "quarantined 1 of 2 records" in alert.summary and "orders" in alert.summary
    text = smtp.messages[0].decode()
    assert "orders" in text and "1 of 2" in text and "/admin/pipeline/alert/" in text
    everything = [text, json.dumps(receiver.bodies), alert.summary]
    everything += [n.subject + n.body for n in Notification.objects.all()]
    assert all(PLANTED not in part for part in everything)


def test_rules_of_each_kind_hold_only_for_their_dataset(dataset):
    now = timezone.now()
    stale = AlertRule.objects.create(name="stale", kind=AlertKind.STALE, dataset=dataset)
    quality = AlertRule.objects.create(name="quality", kind=AlertKind.QUALITY_BELOW)
    dataset.freshness_target = timedelta(hours=1)
    dataset.save()
    ok = Run.objects.create(dataset=dataset, kind=RunKind.INGEST, status=RunStatus.SUCCEEDED)
    Run.objects.filter(pk=ok.pk).update(finished_at=now - timedelta(hours=2))
    figures = alerts.dataset_figures(now)
    held = alerts.conditions(stale, figures, 0)
    assert list(held) == [dataset.pk] and "2.0 h ago (target 1.0 h)" in held[dataset.pk].summary
    assert alerts.conditions(quality, figures, 0) == {}
    Run.objects.filter(pk=ok.pk).update(finished_at=now - timedelta(minutes=30))
    assert alerts.conditions(stale, alerts.dataset_figures(now), 0) == {}


def test_stewards_set_rules_and_channels_viewers_only_read(steward, viewer):
    for perm in ("add_alertrule", "change_alertrule", "delete_alertchannel"):
        assert steward.has_perm(f"pipeline.{perm}") and not viewer.has_perm(f"pipeline.{perm}")
    assert viewer.has_perm("pipeline.view_alert") and viewer.has_perm("pipeline.view_notification")
    assert not steward.has_perm("pipeline.change_alert")
