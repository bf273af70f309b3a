"""Alerts in the admin: stewards set rules and channels; alerts and notifications are
read-only lists (orchestration.alerts writes them)."""

from django.contrib import admin

from atlas_site.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.pipeline.models import Alert, AlertChannel, AlertRule, Notification


@admin.register(AlertChannel)
class AlertChannelAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "recipients", "url", "slack_compatible", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "dataset", "threshold_percent", "repeat_interval", "is_active")
    list_filter = ("kind", "is_active")
    list_select_related = ("dataset",)
    search_fields = ("name", "dataset__slug")
    autocomplete_fields = ("dataset",)
    filter_horizontal = ("channels",)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        "summary",
        "rule",
        "dataset",
        "state",
        "opened_at",
        "last_notified_at",
        "resolved_at",
    )
    list_filter = ("state", "rule__kind")
    list_select_related = ("rule", "dataset")
    search_fields = ("rule__name", "dataset__slug")
    date_hierarchy = "opened_at"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "alert",
        "channel",
        "kind",
        "target",
        "status",
        "attempts",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "kind")
    list_select_related = ("alert", "channel")
    date_hierarchy = "created_at"
