from datetime import timedelta
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from explore.admin_ingest import ApiTokenAdmin, DatasetIngestAdminMixin
from governance.compliance.pii.masking import mask_matches
from governance.compliance.pii.scanner import load_patterns, scan_value
from governance.pipeline import selectors
from governance.pipeline.models import (
    ApiToken,
    Dataset,
    DatasetField,
    LineageEdge,
    Run,
    RunStep,
    Watermark,
)
from governance.quality.models import DimensionCode

SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def sparkline(values: list[Decimal | None]) -> str:
    """SVG polyline points of scores (0 to 1) drawn left to right; gaps are skipped."""
    if not values:
        return ""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{SPARK_HEIGHT - float(value) * SPARK_HEIGHT:.1f}"
        for index, value in enumerate(values)
        if value is not None
    )


def spark_end(values: list[Decimal | None]) -> tuple[str, str] | None:
    """Where the latest value sits: marked with a dot, so a single run still shows."""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    for index in range(len(values) - 1, -1, -1):
        if values[index] is not None:
            y = SPARK_HEIGHT - float(values[index]) * SPARK_HEIGHT
            return f"{index * step:.1f}", f"{y:.1f}"
    return None


def duration_text(duration: timedelta | None) -> str:
    """'0.12 s', '3 min 05 s', '2 h 01 min': how long, as a person reads it."""
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def quality_trend(points: list[selectors.ScorePoint]) -> list[dict]:
    """One row per dimension (and overall): its values over the runs, and a sparkline."""
    series = [("overall", "Overall", [p.overall for p in points])] + [
        (code, label, [p.dimensions.get(code) for p in points])
        for code, label in DimensionCode.choices
    ]
    return [
        {
            "code": code,
            "label": label,
            "values": values,
            "latest": next((v for v in reversed(values) if v is not None), None),
            "points": sparkline(values),
            "end": spark_end(values),
        }
        for code, label, values in series
        if any(v is not None for v in values)
    ]


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

    # --- The dataset's page: overview, promote, retry ----------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/promote/",
                self.admin_site.admin_view(require_POST(self.promote_view)),
                name="{}_{}_promote".format(*info),
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="{}_{}_retry".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if dataset is not None:
            context.update(self.overview_context(request, dataset))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def overview_context(self, request, dataset: Dataset) -> dict:
        from explore.selectors import can_ingest

        failed_batches = selectors.failed_batches(dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = self.has_promote_permission(request)
        return {
            "contract_fields": list(
                DatasetField.objects.filter(dataset=dataset).select_related("classification")
            ),
            "recent_runs": [
                {"run": run, "duration": duration_text(run.duration)}
                for run in selectors.recent_runs(dataset=dataset)
            ],
            "quality_trend": quality_trend(selectors.score_trend(dataset=dataset)),
            "spark_width": SPARK_WIDTH,
            "spark_height": SPARK_HEIGHT,
            "pii_summary": selectors.pii_summary(dataset=dataset),
            "pii_runs": selectors.PII_RECENT_RUNS,
            "lineage": selectors.dataset_lineage(dataset=dataset),
            "failed_batches": failed_batches,
            "failed_promotion": failed_promotion,
            "may_promote": may_promote,
            "may_retry": (failed_batches and can_ingest(user=request.user, dataset=dataset))
            or (failed_promotion is not None and may_promote),
        }

    def _dataset_for(self, request, object_id) -> Dataset:
        dataset = self.get_object(request, unquote(object_id))
        if dataset is None:
            raise Http404("No such dataset.")
        return dataset

    def _back(self, dataset: Dataset) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(
                "admin:pipeline_dataset_change", args=[dataset.pk], current_app=self.admin_site.name
            )
        )

    def _run_link(self, run: Run) -> str:
        url = reverse("admin:pipeline_run_change", args=[run.pk], current_app=self.admin_site.name)
        return format_html('<a href="{}">run {}</a>', url, run.pk)

    def promote_view(self, request, object_id):
        from governance.pipeline.services import request_promotion

        dataset = self._dataset_for(request, object_id)
        if not self.has_promote_permission(request):
            raise PermissionDenied
        run = request_promotion(dataset=dataset, triggered_by="admin", actor=request.user)
        self.log_change(request, dataset, f"Requested promotion (run {run.pk}).")
        messages.success(
            request, format_html("Queued {}: explore → chart → navigate.", self._run_link(run))
        )
        return self._back(dataset)

    def retry_view(self, request, object_id):
        """Load the failed batches again and, when the last promotion failed, promote again.

        A promotion resumes from its watermark, so a new run is the retry of a failed one.
        """
        from explore.selectors import can_ingest
        from explore.services import BatchNotRetryableError, retry_batch
        from governance.pipeline.services import request_promotion

        dataset = self._dataset_for(request, object_id)
        may_load = can_ingest(user=request.user, dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = failed_promotion is not None and self.has_promote_permission(request)
        if not may_load and not may_promote:
            raise PermissionDenied
        retried = 0
        for batch in selectors.failed_batches(dataset=dataset) if may_load else []:
            try:
                retry_batch(batch=batch, actor=request.user)
            except BatchNotRetryableError:
                continue  # another steward retried it meanwhile
            retried += 1
        if retried:
            self.log_change(request, dataset, f"Retried {retried} failed batch(es).")
            messages.success(request, f"{retried} failed batch(es) queued to load again.")
        if may_promote:
            run = request_promotion(dataset=dataset, triggered_by="admin-retry", actor=request.user)
            self.log_change(
                request, dataset, f"Retried failed run {failed_promotion.pk} as run {run.pk}."
            )
            messages.success(
                request,
                format_html(
                    "Promotion retried: {} failed, {} queued.",
                    self._run_link(failed_promotion),
                    self._run_link(run),
                ),
            )
        if not retried and not may_promote:
            messages.info(request, "Nothing to retry: no failed load or promotion.")
        return self._back(dataset)


@admin.register(DatasetField)
class DatasetFieldAdmin(AuditedModelAdmin):
    """Every field of every contract; where compliance officers set classifications."""

    list_display = ("__str__", "dataset", "position", "data_type", "required", "classification")
    list_filter = ("classification", "data_type", "required", "dataset")
    list_select_related = ("dataset", "classification")
    search_fields = ("name", "dataset__slug")


def with_masked_examples(checks: list) -> list[dict]:
    """Each failed check with its examples, any PII left in their text masked for display.

    The promotion protects every excerpt at its field's level before storing it; examples
    stored before Atlas did may still hold PII, so the page scans and masks what it shows.
    """
    patterns = load_patterns()

    def masked(text) -> str:
        text = "" if text is None else str(text)
        matches = scan_value(text, patterns)
        return mask_matches(text, matches) if matches else text

    return [
        {
            "check": check,
            "examples": [
                {
                    "raw_record": example.get("raw_record"),
                    "field": example.get("field") or "(record)",
                    "message": masked(example.get("message")),
                    "value_excerpt": masked(example.get("value_excerpt")),
                }
                for example in check.failing_examples or []
                if isinstance(example, dict)
            ],
        }
        for check in checks
    ]


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
    change_form_template = "admin/pipeline/run/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if run is not None:
            overview = selectors.run_overview(run=run)
            context["overview"] = overview
            context["timing"] = {
                "waited": duration_text(overview.waited),
                "duration": duration_text(overview.duration),
                "steps": [
                    {"step": item.step, "duration": duration_text(item.duration)}
                    for item in overview.steps
                ],
            }
            readable = selectors.readable_dataset_ids(request.user)
            context["failed_rules"] = (
                with_masked_examples(overview.failed_checks)
                if readable is None or run.dataset_id in readable
                else []
            )
            context["quarantine_url"] = (
                reverse(
                    "admin:chart_quarantinedrecord_changelist", current_app=self.admin_site.name
                )
                + f"?run={run.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context=context)


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
