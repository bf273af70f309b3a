"""What a notification says, and the link it gives."""

from django.conf import settings
from django.urls import reverse

from governance.pipeline.models import (
    Alert,
    AlertRule,
    NotificationKind,
)


def alert_link(alert: Alert) -> str:
    base = str(settings.ATLAS_SITE_URL).rstrip("/")
    return base + reverse("admin:pipeline_alert_change", args=[alert.pk])


def message(alert: Alert, rule: AlertRule, kind: str) -> tuple[str, str]:
    verb = {"opened": "ALERT", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[kind]
    subject = f"[Atlas] {verb}: {rule.name} — {alert.summary}"[:300]
    body = (
        f"{verb}: {rule.name} ({rule.get_kind_display()})\n"
        f"{alert.summary}\n"
        f"Opened at {alert.opened_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    if kind == NotificationKind.RESOLVED and not rule.is_active:
        body += "Resolved because the rule was switched off.\n"
    return subject, body + f"{alert_link(alert)}\n"
