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
from django.db import connection, models, transaction
from django.urls import reverse
from django.utils import timezone

from atlas_site import advisory_locks
from atlas_site.partitions import PARTITIONED_TABLES
from atlas_site.schemas import sql_table
from governance.compliance.models import ClassificationSuggestion, SuggestionStatus
from governance.pipeline.models import (
    FRESHNESS_KINDS,
    PLATFORM_ALERT_KINDS,
    Alert,
    AlertChannel,
    AlertKind,
    AlertRule,
    AlertState,
    AlertSubscription,
    ChannelKind,
    Dataset,
    DatasetField,
    DeadLetter,
    DeliveryStatus,
    Heartbeat,
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
    # Points (of 100) its latest quality score fell from the one before (negative: rose).
    score_drop: float | None = None
    # When its oldest PII suggestion still waiting for a steward was made.
    oldest_suggestion_at: datetime | None = None


def dataset_figures(now: datetime) -> list[DatasetFigures]:
    """Every active dataset's figures in one query (run_dataset_kind_idx, score_dataset_idx)."""
    run, score = sql_table(Run), sql_table(QualityScore)
    suggestion, field = sql_table(ClassificationSuggestion), sql_table(DatasetField)
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
                         ORDER BY created_at DESC LIMIT 1) = %(failed)s),
               100 * (s.previous - s.overall),
               (SELECT min(cs.created_at) FROM {field} f
                  JOIN {suggestion} cs ON cs.dataset_field_id = f.id AND cs.status = %(open)s
                 WHERE f.dataset_id = d.id)
          FROM {sql_table(Dataset)} d
          LEFT JOIN LATERAL (
               SELECT rows_in, rows_quarantined FROM {run}
                WHERE dataset_id = d.id AND kind = %(chart)s AND status = ANY(%(ended)s)
                ORDER BY created_at DESC LIMIT 1) q ON true
          LEFT JOIN LATERAL (
               SELECT below_threshold, overall,
                      lead(overall) OVER (ORDER BY created_at DESC) AS previous
                 FROM {score}
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
        "open": SuggestionStatus.OPEN.value,
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
            score_drop=float(drop) if drop is not None else None,
            oldest_suggestion_at=oldest_suggestion,
        )
        for (
            pk,
            slug,
            target,
            last,
            rows_in,
            quarantined,
            below,
            failed,
            drop,
            oldest_suggestion,
        ) in rows
    ]


# Rows counted in a DEFAULT partition at most: the alert says "at least" past it, and the
# count stays an index-free scan of a bounded number of rows.
DEFAULT_ROWS_COUNTED = 100_000


@dataclass(frozen=True)
class PlatformFigures:
    dead_letters: int
    # DEFAULT partition -> rows in it (counted up to DEFAULT_ROWS_COUNTED), only those holding any.
    default_rows: dict[str, int]
    # Seconds since a worker / the scheduler last beat (orchestration.liveness); None: never.
    worker_silent_for: float | None
    beat_silent_for: float | None


def platform_figures(now: datetime) -> PlatformFigures:
    default_rows = {}
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            name = table.partition_sql_name(table.default_partition)
            cursor.execute(
                f"SELECT count(*) FROM (SELECT FROM {name} LIMIT %s) r", [DEFAULT_ROWS_COUNTED]
            )
            count = cursor.fetchone()[0]
            if count:
                default_rows[f"{table.schema}.{table.default_partition}"] = count
    seen = dict(
        Heartbeat.objects.values("component")
        .annotate(last=models.Max("seen_at"))
        .values_list("component", "last")
    )

    def silent_for(component: str) -> float | None:
        last = seen.get(component)
        return (now - last).total_seconds() if last is not None else None

    return PlatformFigures(
        dead_letters=DeadLetter.objects.count(),
        default_rows=default_rows,
        worker_silent_for=silent_for("worker"),
        beat_silent_for=silent_for("beat"),
    )


@dataclass(frozen=True)
class Condition:
    dataset_id: int | None
    summary: str


def _dataset_condition(rule: AlertRule, f: DatasetFigures, now: datetime) -> str | None:
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
        if (
            rule.drop_points is not None
            and f.score_drop is not None
            and f.score_drop > float(rule.drop_points)
        ):
            return (
                f"{f.slug}: latest quality score fell {f.score_drop:.1f} points "
                f"(more than {float(rule.drop_points):g})"
            )
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
    elif (
        rule.kind == AlertKind.SUGGESTION_WAITING
        and rule.wait_days is not None
        and f.oldest_suggestion_at is not None
    ):
        days = (now - f.oldest_suggestion_at).total_seconds() / 86400
        if days > rule.wait_days:
            return (
                f"{f.slug}: a PII classification suggestion has waited {days:.0f} days "
                f"(more than {rule.wait_days})"
            )
    return None


def _silence(component: str, silent_for: float | None, minutes: int) -> str | None:
    if silent_for is None:
        return f"no {component} has ever been seen"
    if silent_for > minutes * 60:
        return f"no {component} seen for {silent_for / 60:.0f} min (more than {minutes})"
    return None


def _platform_condition(rule: AlertRule, p: PlatformFigures) -> str | None:
    if rule.kind == AlertKind.DEAD_LETTERS:
        return f"{p.dead_letters} dead letter(s) set aside" if p.dead_letters else None
    if rule.kind == AlertKind.DEFAULT_PARTITION_ROWS:
        if not p.default_rows:
            return None
        parts = ", ".join(
            f"{name}: {'at least ' if n >= DEFAULT_ROWS_COUNTED else ''}{n} rows"
            for name, n in sorted(p.default_rows.items())
        )
        return f"rows in DEFAULT partitions (a partition is missing): {parts}"
    if rule.kind == AlertKind.WORKER_SILENT and rule.silent_minutes is not None:
        return _silence("worker", p.worker_silent_for, rule.silent_minutes)
    if rule.kind == AlertKind.BEAT_SILENT and rule.silent_minutes is not None:
        return _silence("scheduler (beat)", p.beat_silent_for, rule.silent_minutes)
    return None


def conditions(
    rule: AlertRule, figures: list[DatasetFigures], platform: PlatformFigures, now: datetime
) -> dict[int | None, Condition]:
    """Dataset id (None: platform-wide) -> the condition holding for the rule."""
    if rule.kind in PLATFORM_ALERT_KINDS:
        summary = _platform_condition(rule, platform)
        return {None: Condition(None, summary)} if summary is not None else {}
    held: dict[int | None, Condition] = {}
    for f in figures:
        if rule.dataset_id is not None and f.id != rule.dataset_id:
            continue
        summary = _dataset_condition(rule, f, now)
        if summary is not None:
            held[f.id] = Condition(f.id, summary)
    return held


def _link(alert: Alert) -> str:
    base = str(settings.ATLAS_SITE_URL).rstrip("/")
    return base + reverse("admin:pipeline_alert_change", args=[alert.pk])


def _message(alert: Alert, rule: AlertRule, kind: str) -> tuple[str, str]:
    verb = {"opened": "ALERT", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[kind]
    subject = f"[Atlas] {verb}: {rule.name} — {alert.summary}"[:300]
    body = (
        f"{verb}: {rule.name} ({rule.get_kind_display()})\n"
        f"{alert.summary}\n"
        f"Opened at {alert.opened_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    if kind == NotificationKind.RESOLVED and not rule.is_active:
        body += "Resolved because the rule was switched off.\n"
    return subject, body + f"{_link(alert)}\n"


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
    subject, body = _message(alert, rule, kind)
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


def send_test_message(channel: AlertChannel) -> str:
    """Send a test message on the channel now; '' when delivered, else the error's kind.

    Not kept as a notification: it belongs to no alert. Never raises.
    """
    subject = f"[Atlas] Test message on channel {channel.name}"
    body = "A test message from Atlas: this channel receives alert notifications.\n"
    try:
        if channel.kind == ChannelKind.EMAIL:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(channel.recipients))
        else:
            payload: dict[str, Any]
            if channel.slack_compatible:
                payload = {"text": f"{subject}\n{body}"}
            else:
                payload = {"event": "test", "channel": channel.name, "summary": body.strip()}
            _post(channel, payload)
    except Exception as exc:
        return _describe(exc)
    return ""


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
    channel: AlertChannel | None = notification.channel
    if channel is None:  # a person's own subscription, to the address queued
        send_mail(
            notification.subject,
            notification.body,
            settings.DEFAULT_FROM_EMAIL,
            [notification.target],
        )
        return
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
    _post(channel, payload)


def _post(channel: AlertChannel, payload: dict[str, Any]) -> None:
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
            "channel", "subscriber", "alert__rule", "alert__dataset"
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
                notification.channel.name if notification.channel else "a subscriber",
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
