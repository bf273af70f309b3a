"""Dead letters in the admin: tasks set aside after crashing their worker too often.

Read-only, like runs: the pipeline writes them; stewards look at what was set aside,
which run it failed and why (orchestration.dead_letters).
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from atlas_site.admin_base import ReadOnlyAdmin
from atlas_site.request_checks import SafeChangeList
from governance.pipeline.models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "task_name",
        "arguments",
        "deliveries",
        "run_link",
        "last_error",
        "first_seen_at",
        "last_seen_at",
    )
    list_filter = ("task_name",)
    list_select_related = ("run",)
    search_fields = ("task_id", "task_name")
    date_hierarchy = "last_seen_at"

    fields = (
        "task_name",
        "task_id",
        "args",
        "kwargs",
        "queue",
        "deliveries",
        "run",
        "last_error",
        "first_seen_at",
        "last_seen_at",
    )

    def get_changelist(self, request, **kwargs):
        return SafeChangeList  # a hierarchy year out of range is a bad filter, not a 500

    @admin.display(description="arguments")
    def arguments(self, obj: DeadLetter) -> str:
        parts = [repr(value) for value in obj.args]
        parts += [f"{name}={value!r}" for name, value in obj.kwargs.items()]
        return ", ".join(parts)

    @admin.display(description="run", ordering="run")
    def run_link(self, obj: DeadLetter) -> str:
        if obj.run_id is None:
            return "-"
        url = reverse("admin:pipeline_run_change", args=[obj.run_id])
        return format_html('<a href="{}">run {} ({})</a>', url, obj.run_id, obj.run.status)
