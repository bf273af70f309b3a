"""Rules evaluated: alerts opened, repeated at most once per interval, resolved; a
notification queued per channel and per subscriber."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import connection, models, transaction
from django.utils import timezone

from atlas_site import advisory_locks
from governance.pipeline.models import (
    Alert,
    AlertRule,
    AlertState,
    AlertSubscription,
    ChannelKind,
    Dataset,
    Heartbeat,
    Notification,
    NotificationKind,
)
from orchestration.alerts.conditions import conditions
from orchestration.alerts.delivery import deliver_due
from orchestration.alerts.figures import dataset_figures, platform_figures
from orchestration.alerts.messages import message


def subscribers(dataset_id: int | None, kind: str) -> list[Any]:
    """The active people with an e-mail address who asked for this kind of alert on the
    dataset: they follow it, or own it and asked for their own datasets' alerts."""
    if dataset_id is None:
        return []  # platform-wide alerts go to the rules' channels only
    owner_id = Dataset.objects.filter(pk=dataset_id).values_list("owner_id", flat=True).first()
    wanted = AlertSubscription.objects.filter(user__is_active=True).exclude(user__email="")
    wanted = wanted.filter(
        models.Q(dataset_id=dataset_id) | models.Q(dataset__isnull=True, user_id=owner_id)
    ).select_related("user")
    people = {s.user.pk: s.user for s in wanted if s.wants(kind)}
    return [people[pk] for pk in sorted(people)]


def _queue(alert: Alert, rule: AlertRule, kind: str, now: datetime) -> int:
    """Notifications for the rule's channels and the dataset's subscribers; each address
    gets one message."""
    subject, body = message(alert, rule, kind)
    made = 0
    addressed: set[str] = set()

    def queue(target: str, **to: Any) -> None:
        nonlocal made
        Notification.objects.create(
            alert=alert,
            kind=kind,
            subject=subject,
            body=body,
            target=target[:500],
            created_at=now,
            next_attempt_at=now,
            **to,
        )
        made += 1

    for channel in rule.channels.all():
        if not channel.is_active:
            continue
        if channel.kind == ChannelKind.EMAIL:
            addressed.update(address.lower() for address in channel.recipients)
            queue(", ".join(channel.recipients), channel=channel)
        else:
            queue(urlsplit(channel.url).netloc, channel=channel)
    for person in subscribers(alert.dataset_id, rule.kind):
        if person.email.lower() not in addressed:
            addressed.add(person.email.lower())
            queue(person.email, subscriber=person)
    return made


@dataclass
class Evaluation:
    opened: int = 0
    repeated: int = 0
    resolved: int = 0
    sent: int = 0
    failed: int = 0


def evaluate_alerts(*, now: datetime | None = None) -> Evaluation:
    """Evaluate every active rule, open/repeat/resolve its alerts, deliver what is due.

    One evaluation at a time (a transaction-level advisory lock, waited for): the
    scheduler's task and a silent side's watcher (orchestration.liveness) may both start
    one; the second finds the alerts as the first left them.
    """
    now = now or timezone.now()
    result = Evaluation()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [advisory_locks.ALERTS])
        _evaluate(now, result)
        Heartbeat.objects.update_or_create(component=EVALUATED, node="", defaults={"seen_at": now})
    result.sent, result.failed = deliver_due(now=now)
    return result


# The Heartbeat row recording the last evaluation (orchestration.liveness reads it).
EVALUATED = "alerts"


def _evaluate(now: datetime, result: Evaluation) -> None:
    figures = dataset_figures(now)
    platform = platform_figures(now)
    for rule in AlertRule.objects.filter(is_active=True).prefetch_related("channels"):
        held = conditions(rule, figures, platform, now)
        with transaction.atomic():
            open_alerts = {
                alert.dataset_id: alert
                for alert in Alert.objects.select_for_update().filter(
                    rule=rule, state=AlertState.OPEN
                )
            }
            for key, condition in held.items():
                alert = open_alerts.get(key)
                if alert is None:
                    alert = Alert.objects.create(
                        rule=rule,
                        dataset_id=key,
                        opened_at=now,
                        last_notified_at=now,
                        summary=condition.summary[:500],
                    )
                    _queue(alert, rule, NotificationKind.OPENED, now)
                    result.opened += 1
                    continue
                alert.summary = condition.summary[:500]
                fields = ["summary"]
                if now - alert.last_notified_at >= rule.repeat_interval:
                    alert.last_notified_at = now
                    fields.append("last_notified_at")
                    _queue(alert, rule, NotificationKind.REPEAT, now)
                    result.repeated += 1
                alert.save(update_fields=fields)
            for key, alert in open_alerts.items():
                if key not in held:
                    _resolve(alert, rule, now)
                    result.resolved += 1
    # A rule switched off (or a dataset deactivated) leaves nobody watching its alerts:
    # they are resolved, saying so, rather than left open for ever.
    stale = Alert.objects.select_related("rule").filter(state=AlertState.OPEN)
    stale = stale.filter(models.Q(rule__is_active=False) | models.Q(dataset__is_active=False))
    for alert in stale.prefetch_related("rule__channels"):
        _resolve(alert, alert.rule, now)
        result.resolved += 1


def _resolve(alert: Alert, rule: AlertRule, now: datetime) -> None:
    alert.state = AlertState.RESOLVED
    alert.resolved_at = now
    alert.save(update_fields=["state", "resolved_at"])
    _queue(alert, rule, NotificationKind.RESOLVED, now)
