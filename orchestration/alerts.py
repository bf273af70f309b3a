"""Alerts stewards and operators can rely on: rules evaluated, alerts opened, repeated and
resolved, notifications delivered by e-mail or webhook and retried with backoff.

Each condition is read for every dataset at once from the pipeline's own bookkeeping
(runs, quality scores, dead letters), each figure an index probe per dataset, never a
scan of the data layers. Messages carry dataset slugs, rule names, counts and a link,
never a value of a record; a delivery's error is kept as its kind (and HTTP status),
never the receiver's answer. A failed delivery never raises into the pipeline.
"""

import json
import logging
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from atlas_site.schemas import sql_table
from governance.pipeline.models import (
    FRESHNESS_KINDS,
    Alert,
    AlertChannel,
    AlertKind,
    AlertRule,
    AlertState,
    ChannelKind,
    Dataset,
    DeadLetter,
    DeliveryStatus,
    Notification,
    NotificationKind,
    Run,
    RunKind,
    RunStatus,
    webhook_host_allowed,
)
from governance.quality.models import QualityScore

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
WEBHOOK_TIMEOUT = 10  # seconds
# A claimed delivery is left alone by other passes this long.
CLAIM_LEASE = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 1, 2, 4 ... 60 minutes."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


@dataclass(frozen=True)
class DatasetFigures:
    id: int
    slug: str
    freshness_lag: float | None  # seconds since its last successful load or promotion
    freshness_target: float
    chart_run_in: int | None  # examined by its last ended explore → chart run
    chart_run_quarantined: int | None
    score_below: bool | None  # its latest quality score fell below its threshold
    # Kinds of run whose latest ended run failed.
    failed_kinds: tuple[str, ...]


def dataset_figures(now: datetime) -> list[DatasetFigures]:
    """Every active dataset's figures in one query (run_dataset_kind_idx, score_dataset_idx)."""
    run, score = sql_table(Run), sql_table(QualityScore)
    sql = f"""
        SELECT d.id, d.slug, EXTRACT(EPOCH FROM d.freshness_target),
               (SELECT max(f.finished_at) FROM unnest(%(fresh)s::text[]) k(kind)
                  CROSS JOIN LATERAL (
                      SELECT finished_at FROM {run}
                       WHERE dataset_id = d.id AND kind = k.kind AND status = %(ok)s
                         AND finished_at IS NOT NULL
                       ORDER BY created_at DESC LIMIT 1) f),
               q.rows_in, q.rows_quarantined, s.below_threshold,
               (SELECT coalesce(array_agg(k.kind ORDER BY k.kind), '{{}}')
                  FROM unnest(%(kinds)s::text[]) k(kind)
                 WHERE (SELECT status FROM {run}
                         WHERE dataset_id = d.id AND kind = k.kind
                           AND status = ANY(%(ended)s)
                         ORDER BY created_at DESC LIMIT 1) = %(failed)s)
          FROM {sql_table(Dataset)} d
          LEFT JOIN LATERAL (
               SELECT rows_in, rows_quarantined FROM {run}
                WHERE dataset_id = d.id AND kind = %(chart)s AND status = ANY(%(ended)s)
                ORDER BY created_at DESC LIMIT 1) q ON true
          LEFT JOIN LATERAL (
               SELECT below_threshold FROM {score}
                WHERE dataset_id = d.id ORDER BY created_at DESC LIMIT 1) s ON true
         WHERE d.is_active
         ORDER BY d.slug
    """
    params: dict[str, Any] = {
        "fresh": [kind.value for kind in FRESHNESS_KINDS],
        "kinds": [kind.value for kind in RunKind],
        "ok": RunStatus.SUCCEEDED.value,
        "failed": RunStatus.FAILED.value,
        "ended": [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value],
        "chart": RunKind.PROMOTE_CHART.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        DatasetFigures(
            id=pk,
            slug=slug,
            freshness_lag=(now - last).total_seconds() if last is not None else None,
            freshness_target=float(target),
            chart_run_in=rows_in,
            chart_run_quarantined=quarantined,
            score_below=below,
            failed_kinds=tuple(failed),
        )
        for pk, slug, target, last, rows_in, quarantined, below, failed in rows
    ]


@dataclass(frozen=True)
class Condition:
    dataset_id: int | None
    summary: str


def _dataset_condition(rule: AlertRule, f: DatasetFigures) -> str | None:
    """The summary when the rule's condition holds for the dataset, else None."""
    if rule.kind == AlertKind.RUN_FAILED:
        kinds = [k for k in f.failed_kinds if not rule.run_kind or k == rule.run_kind]
        if kinds:
            return f"{f.slug}: latest {', '.join(kinds)} run failed"
    elif rule.kind == AlertKind.STALE:
        if f.freshness_lag is not None and f.freshness_lag > f.freshness_target:
            hours = f.freshness_lag / 3600
            target = f.freshness_target / 3600
            return f"{f.slug}: last load or promotion {hours:.1f} h ago (target {target:.1f} h)"
    elif rule.kind == AlertKind.QUALITY_BELOW:
        if f.score_below:
            return f"{f.slug}: latest quality score below the dataset's threshold"
    elif (
        rule.kind == AlertKind.QUARANTINE_SHARE
        and rule.threshold_percent is not None
        and f.chart_run_in
        and f.chart_run_quarantined is not None
    ):
        share = 100 * f.chart_run_quarantined / f.chart_run_in
        if share > float(rule.threshold_percent):
            return (
                f"{f.slug}: last chart run quarantined {f.chart_run_quarantined} of "
                f"{f.chart_run_in} records ({share:.1f}% > {rule.threshold_percent}%)"
            )
    return None


def conditions(
    rule: AlertRule, figures: list[DatasetFigures], dead_letters: int
) -> dict[int | None, Condition]:
    """Dataset id (None: platform-wide) -> the condition holding for the rule."""
    if rule.kind == AlertKind.DEAD_LETTERS:
        if dead_letters:
            return {None: Condition(None, f"{dead_letters} dead letter(s) set aside")}
        return {}
    held: dict[int | None, Condition] = {}
    for f in figures:
        if rule.dataset_id is not None and f.id != rule.dataset_id:
            continue
        summary = _dataset_condition(rule, f)
        if summary is not None:
            held[f.id] = Condition(f.id, summary)
    return held


def _link(alert: Alert) -> str:
    base = str(settings.ATLAS_SITE_URL).rstrip("/")
    return base + reverse("admin:pipeline_alert_change", args=[alert.pk])


def _queue(alert: Alert, rule: AlertRule, kind: str, now: datetime) -> int:
    verb = {"opened": "ALERT", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[kind]
    subject = f"[Atlas] {verb}: {rule.name} — {alert.summary}"[:300]
    body = (
        f"{verb}: {rule.name} ({rule.get_kind_display()})\n"
        f"{alert.summary}\n"
        f"Opened at {alert.opened_at:%Y-%m-%d %H:%M} UTC.\n"
        f"{_link(alert)}\n"
    )
    made = 0
    for channel in rule.channels.all():
        if not channel.is_active:
            continue
        if channel.kind == ChannelKind.EMAIL:
            target = ", ".join(channel.recipients)
        else:
            target = urlsplit(channel.url).netloc
        Notification.objects.create(
            alert=alert,
            channel=channel,
            kind=kind,
            subject=subject,
            body=body,
            target=target[:500],
            created_at=now,
            next_attempt_at=now,
        )
        made += 1
    return made


@dataclass
class Evaluation:
    opened: int = 0
    repeated: int = 0
    resolved: int = 0
    sent: int = 0
    failed: int = 0


def evaluate_alerts(*, now: datetime | None = None) -> Evaluation:
    """Evaluate every active rule, open/repeat/resolve its alerts, deliver what is due."""
    now = now or timezone.now()
    result = Evaluation()
    figures = dataset_figures(now)
    dead_letters = DeadLetter.objects.count()
    for rule in AlertRule.objects.filter(is_active=True).prefetch_related("channels"):
        held = conditions(rule, figures, dead_letters)
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
                if key in held:
                    continue
                alert.state = AlertState.RESOLVED
                alert.resolved_at = now
                alert.save(update_fields=["state", "resolved_at"])
                _queue(alert, rule, NotificationKind.RESOLVED, now)
                result.resolved += 1
    result.sent, result.failed = deliver_due(now=now)
    return result


def _describe(exc: BaseException) -> str:
    """The error's kind (and HTTP status), never the receiver's own words."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, OSError):
        return f"{type(exc.reason).__name__}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    return type(exc).__name__


def _send(notification: Notification) -> None:
    channel: AlertChannel = notification.channel
    if channel.kind == ChannelKind.EMAIL:
        send_mail(
            notification.subject,
            notification.body,
            settings.DEFAULT_FROM_EMAIL,
            list(channel.recipients),
        )
        return
    alert = notification.alert
    if channel.slack_compatible:
        payload: dict[str, Any] = {"text": f"{notification.subject}\n{notification.body}"}
    else:
        payload = {
            "event": notification.kind,
            "rule": alert.rule.name,
            "kind": alert.rule.kind,
            "dataset": alert.dataset.slug if alert.dataset is not None else None,
            "summary": alert.summary,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "link": _link(alert),
        }
    # The URL is a channel's URLField (http or https only), on a host an operator listed:
    # checked again here, as the list may have changed since the channel was saved.
    if not webhook_host_allowed(channel.url):
        raise WebhookHostNotAllowedError
    request = urllib.request.Request(  # noqa: S310
        channel.url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "Atlas alerts"},
        method="POST",
    )
    with _WEBHOOK_OPENER.open(request, timeout=WEBHOOK_TIMEOUT) as response:
        response.read()


class WebhookHostNotAllowedError(Exception):
    """The channel's host is not (or no longer) in ATLAS_WEBHOOK_HOSTS."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would take the request to a host nobody listed: a 3xx answer is a failed
    # delivery (HTTPError), not a request sent on.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_WEBHOOK_OPENER = urllib.request.build_opener(_NoRedirects)


def deliver_due(*, now: datetime | None = None) -> tuple[int, int]:
    """Send the notifications due (new, or failed and past their backoff): (sent, failed).

    Each is claimed by a conditional update (one row changed, or another pass has it).
    """
    now = now or timezone.now()
    sent = failed = 0
    due = Notification.objects.filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED], next_attempt_at__lte=now
    ).order_by("next_attempt_at")
    for pk, at in list(due.values_list("pk", "next_attempt_at")[:500]):
        claimed = Notification.objects.filter(pk=pk, next_attempt_at=at).update(
            next_attempt_at=now + CLAIM_LEASE
        )
        if claimed != 1:
            continue
        notification = Notification.objects.select_related(
            "channel", "alert__rule", "alert__dataset"
        ).get(pk=pk)
        notification.attempts += 1
        try:
            _send(notification)
        except Exception as exc:
            notification.last_error = _describe(exc)[:300]
            if notification.attempts >= MAX_ATTEMPTS:
                notification.status = DeliveryStatus.GAVE_UP
                notification.next_attempt_at = None
            else:
                notification.status = DeliveryStatus.FAILED
                notification.next_attempt_at = now + backoff(notification.attempts)
            failed += 1
            logger.warning(
                "alert notification %s to %s failed: %s",
                notification.pk,
                notification.channel.name,
                notification.last_error,
            )
        else:
            notification.status = DeliveryStatus.SENT
            notification.sent_at = now
            notification.next_attempt_at = None
            notification.last_error = ""
            sent += 1
        notification.save(
            update_fields=["attempts", "status", "sent_at", "next_attempt_at", "last_error"]
        )
    return sent, failed
