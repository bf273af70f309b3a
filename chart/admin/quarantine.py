"""Quarantined records in the admin: the review list (filters, the reasons open records
share, search by business key, an export whose keys are protected row by row).

QuarantinedRecordAdmin gathers a record's review page (quarantine_review.py) and the
list's actions (quarantine_actions.py); the filters are in quarantine_filters.py.
"""

from django.contrib import admin, messages

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, LightChangeList
from atlas_site.admin_values import ValuesAdminMixin
from atlas_site.request_checks import parse_pk
from chart import selectors as chart_selectors
from chart.admin.quarantine_actions import QuarantineActionsMixin
from chart.admin.quarantine_filters import (
    QuarantineRunFilter,
    ReasonFieldFilter,
    ReasonRuleFilter,
    chosen_dataset,
)
from chart.admin.quarantine_review import QuarantineReviewMixin
from chart.models import QuarantinedRecord
from chart.reprocess import reasons_summary
from governance.pipeline.models import Dataset


class QuarantineChangeList(LightChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The reasons column needs `reasons`, a jsonb column LightChangeList leaves unread.
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(None).defer("corrected_payload", "resolution_note")


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(
    QuarantineReviewMixin,
    QuarantineActionsMixin,
    ValuesAdminMixin,
    LargeTableAdmin,
    AuditedModelAdmin,
):
    """Quarantine review: the raw record next to its reasons; fix, re-process or dismiss.

    Nothing here is edited through the form: every change goes through chart.reprocess,
    which checks the permission and audits it. Values show as the reader may see them.
    """

    # The export's business keys are values: protected row by row (protect_export_row).
    export_holds_values = True

    list_display = (
        "id",
        "dataset",
        "business_key",
        "status",
        "reasons_column",
        "run",
        "reprocess_run",
        "created_at",
    )
    # One search, by business key (get_search_results): an exact key, never a scan.
    search_fields = ("business_key",)
    search_help_text = (
        "The business key as the list shows it: its value, or for a key of several fields "
        "the values in order separated by | (e.g. 1001 | DE); the first values alone find "
        "every key starting with them. Values match exactly. Datasets whose key values you "
        "may neither see nor reveal are not searched."
    )
    list_filter = (
        "status",
        "dataset",
        QuarantineRunFilter,
        ReasonFieldFilter,
        ReasonRuleFilter,
    )
    list_select_related = ("dataset", "run", "reprocess_run")
    raw_id_fields = (
        "dataset",
        "raw_record",
        "run",
        "reprocess_run",
        "chart_record",
        "corrected_by",
        "resolved_by",
    )
    ordering = ("-id",)
    actions = ("reprocess_selected", "correct_selected", "dismiss_selected")
    change_list_template = "admin/chart/quarantinedrecord/change_list.html"

    def changelist_view(self, request, extra_context=None):
        # The reasons open records share, with counts: what one fix could clear at once.
        dataset = parse_pk(Dataset, request.GET.get("dataset__id__exact") or None)
        context = {
            **(extra_context or {}),
            "groups": chart_selectors.open_quarantine_groups(dataset_id=dataset),
            "groups_dataset": dataset,
            "groups_sample": chart_selectors.GROUPS_SAMPLE,
        }
        return super().changelist_view(request, context)

    change_form_template = "admin/chart/quarantinedrecord/change_form.html"
    fields = (
        "dataset",
        "raw_record",
        "business_key",
        "run",
        "created_at",
        "status",
        "reprocess_run",
        "chart_record",
        "corrected_by",
        "corrected_at",
        "resolution_note",
        "resolved_by",
        "resolved_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist(self, request, **kwargs):
        return QuarantineChangeList

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        # Only the datasets listed: the one filtered on, those the reader may read.
        datasets: set[int] | None = getattr(request, "_atlas_readable", None)
        if chosen := chosen_dataset(request):
            datasets = {int(chosen)} & datasets if datasets is not None else {int(chosen)}
        search = chart_selectors.quarantine_key_search(
            search_term, shields=self.shields(request), dataset_ids=datasets
        )
        if search.refused:
            messages.warning(
                request,
                f"Not searched by business key in {', '.join(search.refused)}: the values "
                "typed are ones you may neither see nor reveal there.",
            )
        if search.matches is None:
            return queryset.none(), False
        return queryset.filter(search.matches), False

    def shield_object(self, request, obj) -> None:
        # The key as the review shows values: each part at its field's level.
        obj.business_key = chart_selectors.shown_business_key(
            self.shields(request)(obj.dataset_id), obj.dataset.business_key, obj.business_key
        )

    def protect_export_row(self, request, columns):
        if "business_key" not in columns:
            return None
        shields = self.shields(request)
        position = {name: index for index, name in enumerate(columns)}
        key_fields = dict(Dataset.objects.values_list("pk", "business_key"))

        def protect(row: tuple) -> tuple:
            row = list(row)
            dataset_id = row[position["dataset_id"]]
            row[position["business_key"]] = chart_selectors.shown_business_key(
                shields(dataset_id), key_fields.get(dataset_id) or [], row[position["business_key"]]
            )
            return tuple(row)

        return protect

    @admin.display(description="reasons")
    def reasons_column(self, obj: QuarantinedRecord) -> str:
        return reasons_summary(obj.reasons)
