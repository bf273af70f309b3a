from django.contrib import admin

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from governance.compliance.models import PiiType


@admin.register(ChartRecord)
class ChartRecordAdmin(LargeTableAdmin, ReadOnlyAdmin):
    # `data` keeps restricted values encrypted; this page shows them as stored.
    list_display = ("id", "dataset", "business_key", "is_current", "run", "created_at")
    list_filter = ("is_current", "dataset")
    list_select_related = ("dataset", "run")
    raw_id_fields = ("dataset", "raw_record", "superseded_by", "run")
    ordering = ("-id",)


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(LargeTableAdmin, AuditedModelAdmin):
    """A steward reviews a quarantined record and notes what became of it."""

    list_display = ("id", "dataset", "status", "run", "created_at", "resolved_at")
    list_filter = ("status", "dataset")
    list_select_related = ("dataset", "run")
    raw_id_fields = ("dataset", "raw_record", "run", "resolved_by")
    ordering = ("-id",)
    fields = (
        "dataset",
        "raw_record",
        "run",
        "reasons",
        "created_at",
        "status",
        "resolution_note",
        "resolved_by",
        "resolved_at",
    )
    # What the pipeline recorded stays as it was; only the review is editable.
    readonly_fields = (
        "dataset",
        "raw_record",
        "run",
        "reasons",
        "created_at",
        "resolved_by",
        "resolved_at",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PiiTypeFilter(admin.SimpleListFilter):
    # Choices from the code: a DISTINCT over every finding would read the whole table.
    title = "PII type"
    parameter_name = "pii_type"

    def lookups(self, request, model_admin):
        return PiiType.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pii_type=self.value())
        return queryset


@admin.register(PiiFinding)
class PiiFindingAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "dataset",
        "field_name",
        "pii_type",
        "pattern",
        "confidence",
        "masked_excerpt",
        "created_at",
    )
    list_filter = (PiiTypeFilter, "dataset")
    list_select_related = ("dataset", "pattern")
    raw_id_fields = ("dataset", "raw_record", "chart_record", "pattern", "run")
    ordering = ("-id",)
