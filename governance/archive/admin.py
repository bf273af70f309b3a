"""Retention in the admin: policies (with legal holds), the retention plan and "Run
retention now", archived partitions with their restore action, and the retention runs.

Every write goes through governance.archive.services (queued through its tasks), which
audits it.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from governance.archive import selectors, tasks
from governance.archive.models import ArchivedPartition, ArchiveRun, RetentionPolicy
from governance.archive.services.ddl import ArchiveError
from governance.archive.services.restore import restore_archived


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedModelAdmin):
    """The model's constraints (the audit log is never deleted, a hold needs its reason,
    one policy per layer and scope) are validated by the form, which shows their messages."""

    list_display = (
        "layer",
        "dataset",
        "keep_months",
        "action",
        "legal_hold",
        "legal_hold_reason",
        "enabled",
    )
    list_filter = ("layer", "action", "legal_hold", "enabled")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset",)
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("layer", "dataset", "keep_months", "action", "enabled")}),
        (
            "Legal hold",
            {
                "fields": ("legal_hold", "legal_hold_reason"),
                "description": "While on hold, nothing this policy covers is archived or "
                "dropped, even when the policy is disabled.",
            },
        ),
        (None, {"fields": ("updated_at",)}),
    )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "plan/",
                self.admin_site.admin_view(self.plan_view),
                name="{}_{}_plan".format(*info),
            ),
            path(
                "run/",
                self.admin_site.admin_view(self.run_view),
                name="{}_{}_run".format(*info),
            ),
            *super().get_urls(),
        ]

    def plan_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Retention plan",
            "rule": selectors.RETENTION_RULE,
            "plan": selectors.retention_plan(),
            "may_run": self.has_change_permission(request),
            "runs": ArchiveRun.objects.order_by("-id")[:10],
        }
        return TemplateResponse(request, "admin/archive/retention_plan.html", context)

    def run_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        with transaction.atomic():
            run = tasks.request_retention(
                triggered_by=request.user.get_username(), actor=request.user
            )
        url = reverse("admin:archive_archiverun_change", args=[run.pk])
        self.message_user(
            request,
            format_html('Retention run <a href="{}">{}</a> is queued.', url, run.pk),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:archive_retentionpolicy_plan"))


@admin.register(ArchivedPartition)
class ArchivedPartitionAdmin(ReadOnlyAdmin):
    # Written by the retention job; a restore is an action of its own, not an edit.
    list_display = (
        "partition_name",
        "table_name",
        "range_start",
        "range_end",
        "row_count",
        "byte_size",
        "archived_at",
        "archived_by",
        "restored_at",
        "restored_by",
    )
    list_filter = ("table_name", ("restored_at", admin.EmptyFieldListFilter))
    search_fields = ("partition_name", "object_key")
    actions = ("restore",)

    def has_restore_permission(self, request) -> bool:
        # Compliance officers (and superusers) hold it: see governance.compliance.roles.
        return request.user.has_perm("archive.change_archivedpartition")

    @admin.action(
        permissions=["restore"],
        description="Restore the selected partitions from object storage (verified)",
    )
    def restore(self, request, queryset):
        manifests = list(queryset.filter(restored_at__isnull=True))
        skipped = queryset.count() - len(manifests)
        if skipped:
            self.message_user(
                request, f"{skipped} selected partitions are restored already.", messages.WARNING
            )
        if settings.ATLAS_MAINTENANCE_QUEUE:
            # Partition DDL runs on the maintenance worker (the owner role); a refusal
            # is written to the audit log.
            for manifest in manifests:
                tasks.restore_archived.apply_async(
                    (manifest.pk, request.user.pk), **tasks.maintenance_task_options()
                )
            if manifests:
                self.message_user(
                    request,
                    f"Restore of {len(manifests)} partitions queued on the maintenance worker; "
                    "each shows its restored time when done, or an audit entry says why not.",
                    messages.SUCCESS,
                )
            return
        for manifest in manifests:
            try:
                restore_archived(manifest=manifest, actor=request.user)
            except ArchiveError as error:
                self.message_user(request, f"Not restored: {error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Restored {manifest.partition_name}: {manifest.row_count} rows, "
                    "sha256 and row count match the manifest.",
                    messages.SUCCESS,
                )


@admin.register(ArchiveRun)
class ArchiveRunAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "status",
        "triggered_by",
        "created_at",
        "finished_at",
        "rows_in",
        "retired",
        "error",
    )
    list_filter = ("status",)
    ordering = ("-id",)
    fields = (
        "status",
        "triggered_by",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
        "rows_in",
        "error",
        "retired_list",
        "kept_list",
    )
    readonly_fields = fields

    @admin.display(description="Partitions retired")
    def retired(self, run) -> int:
        return len(run.detail.get("retired", []))

    @admin.display(description="Retired (archived or dropped)")
    def retired_list(self, run) -> str:
        return _partition_lines(run.detail.get("retired", []))

    @admin.display(description="Kept, and why")
    def kept_list(self, run) -> str:
        return _partition_lines(run.detail.get("kept", []))


def _partition_lines(items: list[dict]) -> str:
    if not items:
        return "—"
    lines = []
    for item in items:
        line = f"{item['table']} {item['partition']} [{item['range'][0]} .. {item['range'][1]})"
        if "rows" in item:
            line += f": {item['rows']} rows"
        if item.get("object_key"):
            line += f" → {item['object_key']} (sha256 {item['sha256'][:12]}…)"
        elif item["status"] != selectors.DUE:
            line += f": {item['status']}, {item['reason']}"
        else:
            line += " dropped"
        lines.append(line)
    return format_html("<br>".join(["{}"] * len(lines)), *lines)
