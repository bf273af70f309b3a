from django.contrib import admin

from atlas_site.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.archive.models import ArchivedPartition, RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedModelAdmin):
    """The model's constraints (the audit log is never deleted, a hold needs its reason)
    are validated by the form, which shows their messages."""

    list_display = ("layer", "dataset", "keep_months", "action", "legal_hold", "enabled")
    list_filter = ("layer", "action", "legal_hold", "enabled")
    list_select_related = ("dataset",)
    readonly_fields = ("updated_at",)


@admin.register(ArchivedPartition)
class ArchivedPartitionAdmin(ReadOnlyAdmin):
    # Written by the retention job; a restore is a job of its own, not an edit here.
    list_display = (
        "partition_name",
        "table_name",
        "range_start",
        "range_end",
        "row_count",
        "archived_at",
        "restored_at",
    )
    list_filter = ("table_name",)
    search_fields = ("partition_name",)
