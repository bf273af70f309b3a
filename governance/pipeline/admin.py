from django.contrib import admin, messages

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from explore.admin_ingest import ApiTokenAdmin, DatasetIngestAdminMixin
from governance.pipeline.models import (
    ApiToken,
    Dataset,
    DatasetField,
    LineageEdge,
    Run,
    RunStep,
    Watermark,
)


class DatasetFieldInline(admin.TabularInline):
    """The dataset's contract, edited on the dataset's page."""

    model = DatasetField
    extra = 0
    fields = (
        "position",
        "name",
        "data_type",
        "required",
        "unique",
        "max_length",
        "allowed_values",
        "pattern",
        "minimum",
        "maximum",
        "classification",
    )
    ordering = ("position", "name")


@admin.register(Dataset)
class DatasetAdmin(DatasetIngestAdminMixin, AuditedModelAdmin):
    list_display = (
        "slug",
        "name",
        "owner",
        "gate_action",
        "quality_threshold",
        "schedule",
        "auto_promote",
        "is_active",
    )
    list_filter = ("is_active", "gate_action", "auto_promote")
    list_select_related = ("owner",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "name", "description", "owner", "is_active")}),
        ("Contract", {"fields": ("business_key", "event_time_field")}),
        ("Quality gate", {"fields": ("quality_threshold", "gate_action")}),
        ("Schedule", {"fields": ("schedule", "auto_promote", "freshness_target")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (DatasetFieldInline,)
    actions = ("promote_now",)

    @admin.action(description="Promote now: explore → chart → navigate", permissions=["promote"])
    def promote_now(self, request, queryset):
        from governance.pipeline.services import request_promotion

        runs = [
            request_promotion(dataset=dataset, triggered_by="admin", actor=request.user)
            for dataset in queryset
        ]
        self.message_user(
            request,
            "Queued " + ", ".join(f"run {run.pk} ({run.dataset.slug})" for run in runs) + ".",
            messages.SUCCESS,
        )

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm("pipeline.add_run")


@admin.register(DatasetField)
class DatasetFieldAdmin(AuditedModelAdmin):
    """Every field of every contract; where compliance officers set classifications."""

    list_display = ("__str__", "dataset", "position", "data_type", "required", "classification")
    list_filter = ("classification", "data_type", "required", "dataset")
    list_select_related = ("dataset", "classification")
    search_fields = ("name", "dataset__slug")


class RunStepInline(admin.TabularInline):
    model = RunStep
    extra = 0
    fields = ("name", "status", "started_at", "finished_at", "rows")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "dataset",
        "kind",
        "status",
        "triggered_by",
        "created_at",
        "rows_in",
        "rows_promoted",
        "rows_quarantined",
    )
    list_filter = ("status", "kind", "dataset")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset", "started_by")
    ordering = ("-id",)
    inlines = (RunStepInline,)


@admin.register(RunStep)
class RunStepAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ("id", "run", "name", "status", "started_at", "finished_at", "rows")
    list_filter = ("status",)
    list_select_related = ("run",)
    raw_id_fields = ("run",)
    ordering = ("-id",)


@admin.register(Watermark)
class WatermarkAdmin(ReadOnlyAdmin):
    list_display = ("dataset", "layer", "position", "updated_at")
    list_filter = ("layer", "dataset")
    list_select_related = ("dataset",)


@admin.register(LineageEdge)
class LineageEdgeAdmin(ReadOnlyAdmin):
    list_display = (
        "dataset",
        "source_layer",
        "source_field",
        "target_layer",
        "target_name",
        "transform",
        "last_seen_at",
    )
    list_filter = ("source_layer", "target_layer", "transform", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("source_field", "target_name")


# Issuing shows the token once and stores its digest; revoking is an action.
admin.site.register(ApiToken, ApiTokenAdmin)

# Tasks set aside after crashing their worker too often (registers its own admin).
import governance.pipeline.admin_dead_letters  # noqa: E402, F401
