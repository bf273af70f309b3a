"""Runs and what they leave behind, read-only (the pipeline writes them): a run's page with
its timing, quality and the rules it failed (examples masked), its steps, each layer's
watermark and the lineage edges.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.urls import reverse

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin
from governance.compliance.pii.masking import mask_matches
from governance.compliance.pii.scanner import load_patterns, scan_value
from governance.pipeline import selectors
from governance.pipeline.admin.formatting import duration_text
from governance.pipeline.models import LineageEdge, Run, RunChunk, RunStep, Watermark
from governance.quality import selectors as quality_selectors


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
            overview = quality_selectors.run_overview(run=run)
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


@admin.register(RunChunk)
class RunChunkAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """The chunks of promotions shared by several workers: who claimed and committed each."""

    list_display = (
        "run",
        "seq",
        "after_id",
        "last_id",
        "rows",
        "status",
        "claimant",
        "attempts",
        "committed_by",
        "committed_at",
    )
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
