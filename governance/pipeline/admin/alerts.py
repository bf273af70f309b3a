"""Alerts in the admin: stewards set rules and channels (and send a channel a test
message); everyone keeps their own subscriptions; alerts and notifications are read-only
lists (orchestration.alerts writes them)."""

from django.contrib import admin, messages

from atlas_site.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.pipeline.models import (
    Alert,
    AlertChannel,
    AlertRule,
    AlertSubscription,
    Heartbeat,
    Notification,
)
from orchestration.alerts import send_test_message


@admin.register(AlertChannel)
class AlertChannelAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "recipients", "url", "slack_compatible", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    actions = ["send_test"]

    @admin.action(description="Send a test message now", permissions=["change"])
    def send_test(self, request, queryset):
        for channel in queryset[:10]:
            error = send_test_message(channel)
            if error:
                self.message_user(
                    request,
                    f"The test message on {channel.name} could not be delivered: {error}.",
                    messages.ERROR,
                )
            else:
                self.message_user(request, f"A test message was sent on {channel.name}.")


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "dataset", "repeat_interval", "is_active")
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
        "subscriber",
        "kind",
        "target",
        "status",
        "attempts",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "kind")
    list_select_related = ("alert", "channel", "subscriber")
    date_hierarchy = "created_at"


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(AuditedModelAdmin):
    """Each person's own alerts by e-mail; a superuser sees everyone's."""

    list_display = ("user", "dataset", "kinds", "created_at")
    list_select_related = ("user", "dataset")
    autocomplete_fields = ("dataset",)
    search_fields = ("dataset__slug", "user__username")

    def get_queryset(self, request):
        mine = super().get_queryset(request)
        return mine if request.user.is_superuser else mine.filter(user=request.user)

    def get_fields(self, request, obj=None):
        fields = ["dataset", "kinds"]
        return ["user", *fields] if request.user.is_superuser else fields

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser or obj.user_id is None:
            obj.user = request.user
        super().save_model(request, obj, form, change)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    """When each worker and the scheduler last said they were alive."""

    list_display = ("component", "node", "seen_at")
    list_filter = ("component",)
