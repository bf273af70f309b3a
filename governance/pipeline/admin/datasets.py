"""Datasets in the admin: the list with each dataset's state (last run, quality,
quarantine, most sensitive level), and a dataset's page: its overview, its contract
(contract_fields.py), promote and retry.

DatasetAdmin gathers the pages mixed into it: uploads and contract exports
(explore.admin_ingest), importing a contract file (contract_import.py) and inferring one
from a sample (contract_inference.py); get_urls below routes every one of them.
"""

from dataclasses import replace

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from atlas_site.admin_base import AuditedModelAdmin
from atlas_site.forms import IsoDurationField, PlainDecimalField
from chart import selectors as chart_selectors
from dashboards.selectors.home import STATES, dataset_cards, dataset_ids_in_state
from explore import selectors as explore_selectors
from explore.admin_ingest import DatasetIngestAdminMixin
from explore.services import BatchNotRetryableError, retry_batch
from governance.pipeline import selectors
from governance.pipeline.admin.contract_fields import DatasetFieldInline, save_contract_fields
from governance.pipeline.admin.contract_import import ContractImportAdminMixin
from governance.pipeline.admin.contract_inference import ContractInferenceAdminMixin
from governance.pipeline.admin.formatting import (
    SPARK_HEIGHT,
    SPARK_WIDTH,
    duration_text,
    quality_trend,
)
from governance.pipeline.admin.links import dataset_page_redirect, run_link
from governance.pipeline.models import Dataset, DatasetField, Run
from governance.pipeline.services import request_promotion
from governance.quality import selectors as quality_selectors
from orchestration.pending import has_work_to_promote


class DatasetStateFilter(admin.SimpleListFilter):
    """Datasets failing, below their threshold, stale or with open quarantine (their cards,
    dashboards.selectors.home: index probes only, cheap on thousands of datasets)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return list(STATES.items())

    def queryset(self, request, queryset):
        if self.value() not in STATES:
            return queryset
        return queryset.filter(pk__in=dataset_ids_in_state(self.value(), timezone.now()))


@admin.register(Dataset)
class DatasetAdmin(
    DatasetIngestAdminMixin,
    ContractImportAdminMixin,
    ContractInferenceAdminMixin,
    AuditedModelAdmin,
):
    list_display = (
        "slug",
        "name",
        "owner",
        "last_run",
        "quality",
        "open_quarantine",
        "most_sensitive_level",
        "gate_action",
        "is_active",
    )
    list_filter = (DatasetStateFilter, "is_active", "gate_action", "auto_promote")
    # The freshness target as ISO 8601 (P7D), the threshold as written (0.95).
    formfield_overrides = {
        models.DurationField: {"form_class": IsoDurationField},
        models.DecimalField: {"form_class": PlainDecimalField},
    }
    list_select_related = ("owner",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "name", "description", "owner", "is_active")}),
        ("Contract", {"fields": ("business_key", "event_time_field", "country")}),
        ("Quality gate", {"fields": ("quality_threshold", "gate_action")}),
        ("Schedule", {"fields": ("schedule", "auto_promote", "freshness_target")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (DatasetFieldInline,)
    actions = ("promote_now",)

    def save_formset(self, request, form, formset, change):
        if formset.model is not DatasetField:
            return super().save_formset(request, form, formset, change)
        return save_contract_fields(self, request, formset)

    @admin.action(description="Promote now: explore → chart → navigate", permissions=["promote"])
    def promote_now(self, request, queryset):
        runs, idle = [], []
        for dataset in queryset:
            if not has_work_to_promote(dataset=dataset):
                idle.append(dataset.slug)
                continue
            runs.append(
                request_promotion(dataset=dataset, triggered_by="admin", actor=request.user)
            )
        if runs:
            self.message_user(
                request,
                "Queued " + ", ".join(f"run {run.pk} ({run.dataset.slug})" for run in runs) + ".",
                messages.SUCCESS,
            )
        if idle:
            self.message_user(request, f"Nothing new to promote in {', '.join(idle)}.")

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm("pipeline.add_run")

    # --- The pages: promote and retry (below), import and inference (their mixins) ------

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
            path(
                "import-contract/",
                self.admin_site.admin_view(self.import_contract_view),
                name="{}_{}_import_contract".format(*info),
            ),
            path(
                "infer-contract/",
                self.admin_site.admin_view(self.infer_contract_view),
                name="{}_{}_infer_contract".format(*info),
            ),
            *super().get_urls(),
        ]

    def batch_promotion(self, request, batch):
        promotion = chart_selectors.batch_promotion(batch=batch)
        if promotion is None or promotion["state"] != "promoted":
            return promotion
        if promotion["run_id"] and request.user.has_perm("pipeline.view_run"):
            promotion["run_url"] = reverse("admin:pipeline_run_change", args=[promotion["run_id"]])
        if promotion["quarantined"] and request.user.has_perm("chart.view_quarantinedrecord"):
            promotion["quarantine_url"] = (
                reverse("admin:chart_quarantinedrecord_changelist")
                + f"?dataset__id__exact={batch.dataset_id}&status__exact=open"
            )
        return promotion

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # The state columns of the page's datasets, read in one query (index probes)
            # and put on the very objects the list draws.
            page = list(changelist.result_list)
            cards = {
                card.id: card
                for card in dataset_cards(
                    dataset_ids=[dataset.pk for dataset in page], limit=None, active_only=False
                )
            }
            for dataset in page:
                dataset.card = cards.get(dataset.pk)
        return response

    @admin.display(description="Last run")
    def last_run(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or card.last_run_id is None:
            return "none yet"
        text = f"{card.last_run_status_label} ({card.last_run_at:%Y-%m-%d %H:%M})"
        return (
            format_html('<strong class="atlas-failing">{}</strong>', text) if card.failing else text
        )

    @admin.display(description="Quality (threshold)")
    def quality(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or card.score is None:
            return "not scored yet"
        text = f"{card.score:.3f} ({card.threshold:.3f})"
        return (
            format_html('<strong class="atlas-failing">{}</strong>', text)
            if card.below_threshold
            else text
        )

    @admin.display(description="Open quarantine")
    def open_quarantine(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or not card.open_quarantine:
            return "0"
        return f"{card.open_quarantine:,}{'+' if card.open_quarantine_capped else ''}"

    @admin.display(description="Most sensitive level")
    def most_sensitive_level(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        return (card.level if card is not None else None) or "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if dataset is not None:
            context.update(self.overview_context(request, dataset))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def overview_context(self, request, dataset: Dataset) -> dict:
        failed_batches = explore_selectors.failed_batches(dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = self.has_promote_permission(request)
        readable = selectors.readable_dataset_ids(request.user)
        pii_summary = chart_selectors.pii_summary(dataset=dataset)
        if readable is not None and dataset.pk not in readable:
            # A dataset limited to groups: counts, but no excerpt of its records.
            pii_summary = [replace(item, examples=[]) for item in pii_summary]
        return {
            "contract_fields": list(
                DatasetField.objects.filter(dataset=dataset).select_related("classification")
            ),
            "recent_runs": [
                {"run": run, "duration": duration_text(run.duration)}
                for run in selectors.recent_runs(dataset=dataset)
            ],
            "quality_trend": quality_trend(quality_selectors.score_trend(dataset=dataset)),
            "spark_width": SPARK_WIDTH,
            "spark_height": SPARK_HEIGHT,
            "pii_summary": pii_summary,
            "pii_runs": chart_selectors.PII_RECENT_RUNS,
            "lineage": selectors.dataset_lineage(dataset=dataset),
            "failed_batches": failed_batches,
            "failed_promotion": failed_promotion,
            "may_promote": may_promote,
            "may_retry": (
                failed_batches and explore_selectors.can_ingest(user=request.user, dataset=dataset)
            )
            or (failed_promotion is not None and may_promote),
        }

    def _dataset_for(self, request, object_id) -> Dataset:
        dataset = self.get_object(request, unquote(object_id))
        if dataset is None:
            raise Http404("No such dataset.")
        return dataset

    def _back(self, dataset: Dataset) -> HttpResponseRedirect:
        return dataset_page_redirect(dataset, current_app=self.admin_site.name)

    def _run_link(self, run: Run) -> str:
        return run_link(run, current_app=self.admin_site.name)

    def promote_view(self, request, object_id):
        dataset = self._dataset_for(request, object_id)
        if not self.has_promote_permission(request):
            raise PermissionDenied
        if not has_work_to_promote(dataset=dataset):
            # No run for nothing: every landed record is in chart or quarantine, every
            # chart record in the facts, every metric computed.
            messages.info(request, "Nothing new to promote.")
            return self._back(dataset)
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
        dataset = self._dataset_for(request, object_id)
        may_load = explore_selectors.can_ingest(user=request.user, dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = failed_promotion is not None and self.has_promote_permission(request)
        if not may_load and not may_promote:
            raise PermissionDenied
        retried = 0
        for batch in explore_selectors.failed_batches(dataset=dataset) if may_load else []:
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
