"""Notifications delivered by e-mail or webhook, retried with backoff; a test message.

A delivery's error is kept as its kind (and HTTP status), never the receiver's answer. A
failed delivery never raises into the pipeline."""

import json
import logging
import smtplib
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from governance.pipeline.models import (
    AlertChannel,
    ChannelKind,
    DeliveryStatus,
    Notification,
    webhook_host_allowed,
)
from orchestration.alerts.messages import alert_link

logger = logging.getLogger(__name__)

logger = logging.getLogger(__name__)


MAX_ATTEMPTS = 8
WEBHOOK_TIMEOUT = 10  # seconds
# A claimed delivery is left alone by other passes this long.
CLAIM_LEASE = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 1, 2, 4 ... 60 minutes."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


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
            "link": alert_link(alert),
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
