"""Alerts: a rule fires once, repeats only after its interval, resolves; deliveries by a
real SMTP server and a real HTTP receiver, retried after a receiver was down; messages
carry slugs, counts and a link, never a record's value."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError
from django.utils import timezone

from atlas_site.testing.http_receiver import HttpReceiver
from atlas_site.testing.services import free_port
from chart.services import promote_to_chart
from explore.models import RawRecord
from governance.compliance.models import ClassificationLevel, ClassificationSuggestion
from governance.pipeline.models import (
    Alert,
    AlertChannel,
    AlertKind,
    AlertRule,
    AlertState,
    AlertSubscription,
    Dataset,
    DeadLetter,
    DeliveryStatus,
    Notification,
    Run,
    RunKind,
    RunStatus,
)
from governance.quality.models import QualityScore
from orchestration import alerts, liveness, tasks

pytestmark = pytest.mark.django_db

PLANTED = "ZEBRA-7731-PLANTED"


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


@pytest.fixture
def receiver():
    r = HttpReceiver(path="/hook")
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
    figures, platform = alerts.dataset_figures(now), alerts.platform_figures(now)
    held = alerts.conditions(stale, figures, platform, now)
    assert list(held) == [dataset.pk] and "2.0 h ago (target 1.0 h)" in held[dataset.pk].summary
    assert alerts.conditions(quality, figures, platform, now) == {}
    Run.objects.filter(pk=ok.pk).update(finished_at=now - timedelta(minutes=30))
    assert alerts.conditions(stale, alerts.dataset_figures(now), platform, now) == {}


def test_stewards_set_rules_and_channels_viewers_only_read(steward, viewer):
    for perm in ("add_alertrule", "change_alertrule", "delete_alertchannel"):
        assert steward.has_perm(f"pipeline.{perm}") and not viewer.has_perm(f"pipeline.{perm}")
    assert viewer.has_perm("pipeline.view_alert") and viewer.has_perm("pipeline.view_notification")
    assert not steward.has_perm("pipeline.change_alert")


def held_for(rule, now=None):
    now = now or timezone.now()
    return alerts.conditions(rule, alerts.dataset_figures(now), alerts.platform_figures(now), now)


def test_a_pii_suggestion_waiting_longer_than_the_rule_allows(customers):
    rule = AlertRule.objects.create(
        name="suggestions", kind=AlertKind.SUGGESTION_WAITING, wait_days=3
    )
    notes = customers.fields.get(name="notes")
    suggestion = ClassificationSuggestion.objects.create(
        dataset_field=notes,
        suggested_level=ClassificationLevel.objects.get(name="restricted"),
        pii_types=["payment_card"],
        evidence_key="payment_card:10",
    )
    assert held_for(rule) == {}
    ClassificationSuggestion.objects.filter(pk=suggestion.pk).update(
        created_at=timezone.now() - timedelta(days=4)
    )
    (condition,) = held_for(rule).values()
    assert condition.summary == (
        "orders: a PII classification suggestion has waited 4 days (more than 3)"
    )
    # Decided: nothing waits any more.
    ClassificationSuggestion.objects.filter(pk=suggestion.pk).update(status="accepted")
    assert held_for(rule) == {}
    with pytest.raises(ValidationError, match="number of days"):
        AlertRule(name="x", kind=AlertKind.SUGGESTION_WAITING).clean()


def test_a_quality_score_that_fell_by_more_than_the_rules_points(dataset):
    rule = AlertRule.objects.create(
        name="quality", kind=AlertKind.QUALITY_BELOW, drop_points=Decimal("5")
    )

    def score(overall):
        run = Run.objects.create(
            dataset=dataset, kind=RunKind.PROMOTE_CHART, status=RunStatus.SUCCEEDED
        )
        QualityScore.objects.create(run=run, dataset=dataset, overall=Decimal(overall))

    score("0.95")
    assert held_for(rule) == {}  # nothing to compare with yet
    score("0.92")
    assert held_for(rule) == {}  # 3 points
    score("0.80")
    (condition,) = held_for(rule).values()
    assert condition.summary == "orders: latest quality score fell 12.0 points (more than 5)"
    score("0.81")
    assert held_for(rule) == {}


def test_rows_in_a_default_partition_hold_platform_wide(dataset, land):
    rule = AlertRule.objects.create(name="default rows", kind=AlertKind.DEFAULT_PARTITION_ROWS)
    assert held_for(rule) == {}
    # A record received where no monthly partition exists lands in the DEFAULT partition.
    (landed,) = land(dataset, [{"order_id": 1}])
    RawRecord.objects.create(
        received_at=timezone.now().replace(year=2090),
        batch=landed.batch,
        dataset=dataset,
        line_number=2,
        payload={"order_id": 2},
        raw_text='{"order_id": 2}',
    )
    (condition,) = held_for(rule).values()
    assert condition.dataset_id is None
    assert condition.summary.endswith("explore.raw_record_default: 1 rows")
    with pytest.raises(ValidationError, match="whole platform"):
        AlertRule(name="x", kind=AlertKind.DEFAULT_PARTITION_ROWS, dataset=dataset).clean()


def test_a_silent_worker_or_beat_from_their_heartbeats():
    worker = AlertRule.objects.create(name="w", kind=AlertKind.WORKER_SILENT, silent_minutes=5)
    beat = AlertRule.objects.create(name="b", kind=AlertKind.BEAT_SILENT, silent_minutes=5)
    now = timezone.now()
    assert held_for(worker, now)[None].summary == "no worker has ever been seen"
    liveness.beat("worker", "celery@a", now=now - timedelta(minutes=9))
    liveness.beat("worker", "celery@b", now=now - timedelta(minutes=7))
    liveness.beat("beat", "beat@a", now=now - timedelta(minutes=1))
    assert held_for(worker, now)[None].summary == "no worker seen for 7 min (more than 5)"
    assert held_for(beat, now) == {}
    liveness.beat("worker", "celery@a", now=now)
    assert held_for(worker, now) == {}


def test_followers_and_owners_get_their_datasets_alerts_by_e_mail(smtp, dataset, django_user_model):
    owner = django_user_model.objects.create_user("owner", email="owner@example.com")
    follower = django_user_model.objects.create_user("follower", email="follow@example.com")
    picky = django_user_model.objects.create_user("picky", email="picky@example.com")
    both = django_user_model.objects.create_user("both", email="ops@example.com")
    gone = django_user_model.objects.create_user("gone", email="gone@example.com", is_active=False)
    dataset.owner = owner
    dataset.save()
    other = Dataset.objects.create(slug="other", name="Other")
    AlertSubscription.objects.create(user=owner)  # every dataset they own
    AlertSubscription.objects.create(user=follower, dataset=dataset)
    AlertSubscription.objects.create(user=follower, dataset=other)
    AlertSubscription.objects.create(user=picky, dataset=dataset, kinds=[AlertKind.STALE])
    AlertSubscription.objects.create(user=both, dataset=dataset)  # also a channel recipient
    AlertSubscription.objects.create(user=gone, dataset=dataset)
    mail = AlertChannel.objects.create(name="ops", kind="email", recipients=["OPS@example.com"])
    rule = AlertRule.objects.create(name="failed", kind=AlertKind.RUN_FAILED)
    rule.channels.set([mail])
    failed_run(dataset, timezone.now())

    result = alerts.evaluate_alerts()
    assert (result.opened, result.sent) == (1, 3)
    targets = sorted(Notification.objects.values_list("target", flat=True))
    assert targets == ["OPS@example.com", "follow@example.com", "owner@example.com"]
    subscribed = Notification.objects.filter(subscriber__isnull=False)
    assert {n.subscriber.username for n in subscribed} == {"owner", "follower"}
    assert all(n.channel is None for n in subscribed)
    assert len(smtp.messages) == 3
    assert all(b"orders: latest ingest run failed" in m for m in smtp.messages)


def test_platform_alerts_go_to_channels_only(smtp, dataset, django_user_model):
    follower = django_user_model.objects.create_user("follower", email="follow@example.com")
    AlertSubscription.objects.create(user=follower, dataset=dataset)
    rule = AlertRule.objects.create(name="dead", kind=AlertKind.DEAD_LETTERS)
    now = timezone.now()
    DeadLetter.objects.create(
        task_id="t1", task_name="x", deliveries=3, first_seen_at=now, last_seen_at=now
    )
    assert (alerts.evaluate_alerts().opened, Notification.objects.count()) == (1, 0)
    assert rule.alerts.get().dataset is None


def test_alerts_of_a_rule_switched_off_are_resolved_saying_so(smtp, dataset):
    mail = AlertChannel.objects.create(name="ops", kind="email", recipients=["ops@example.com"])
    rule = AlertRule.objects.create(name="failed", kind=AlertKind.RUN_FAILED)
    rule.channels.set([mail])
    failed_run(dataset, timezone.now())
    assert alerts.evaluate_alerts().opened == 1
    rule.is_active = False
    rule.save()
    result = alerts.evaluate_alerts()
    assert (result.resolved, result.sent) == (1, 1)
    assert Alert.objects.get().state == AlertState.RESOLVED
    assert b"Resolved because the rule was switched off." in smtp.messages[-1]
    assert alerts.evaluate_alerts().resolved == 0


def test_a_steward_sends_a_channel_a_test_message(client, steward, smtp, receiver, settings):
    receiver.start()
    settings.ATLAS_WEBHOOK_HOSTS = ["127.0.0.1"]
    mail = AlertChannel.objects.create(name="ops", kind="email", recipients=["ops@example.com"])
    hook = AlertChannel.objects.create(name="hook", kind="webhook", url=receiver.url)
    down = AlertChannel.objects.create(
        name="down", kind="webhook", url=f"http://127.0.0.1:{free_port()}/hook"
    )
    client.force_login(steward)
    answer = client.post(
        "/admin/pipeline/alertchannel/",
        {"action": "send_test", "_selected_action": [mail.pk, hook.pk, down.pk]},
        follow=True,
    )
    shown = [str(m) for m in answer.context["messages"]]
    assert "A test message was sent on ops." in shown
    assert "A test message was sent on hook." in shown
    assert "The test message on down could not be delivered: ConnectionRefusedError." in shown
    assert len(smtp.messages) == 1 and b"Test message on channel ops" in smtp.messages[0]
    assert receiver.bodies == [
        {
            "event": "test",
            "channel": "hook",
            "summary": "A test message from Atlas: this channel receives alert notifications.",
        }
    ]
    assert Notification.objects.count() == 0


def test_everyone_keeps_their_own_subscriptions_in_the_admin(client, viewer, steward, dataset):
    client.force_login(viewer)
    answer = client.post(
        "/admin/pipeline/alertsubscription/add/", {"dataset": dataset.pk, "kinds": ["stale"]}
    )
    assert answer.status_code == 302
    mine = AlertSubscription.objects.get()
    assert (mine.user, mine.dataset, mine.kinds) == (viewer, dataset, ["stale"])
    AlertSubscription.objects.create(user=steward, dataset=dataset)
    listed = client.get("/admin/pipeline/alertsubscription/")
    assert list(listed.context["cl"].result_list) == [mine]
    other = AlertSubscription.objects.get(user=steward)
    assert client.get(f"/admin/pipeline/alertsubscription/{other.pk}/change/").status_code == 302
