from dataclasses import replace

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, LightChangeList, ReadOnlyAdmin
from atlas_site.admin_filters import IdInputFilter
from atlas_site.admin_values import ReadableDatasetsMixin, RevealTarget, ValuesAdminMixin
from atlas_site.request_checks import parse_pk
from chart import selectors as chart_selectors
from chart.business_keys import key_parts
from chart.evaluation import to_json
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord, QuarantineStatus
from chart.protected import (
    EXTRA,
    ORIGINAL,
    VALUE,
    protected_parts,
    read_protected,
    reveal_level,
)
from chart.reprocess import (
    BULK_CORRECTION_LIMIT,
    QuarantineReviewError,
    correct_field_in_bulk,
    correct_quarantined_values,
    current_payload,
    dismiss_quarantined,
    raw_record_of,
    reasons_summary,
    reprocess_quarantined,
)
from governance.compliance.keys import is_encrypted
from governance.compliance.models import PiiType
from governance.compliance.protection import PROTECTED_TEXT, ShownValue
from governance.compliance.tokens import is_token
from governance.pipeline.models import Dataset, DatasetField, Run, RunKind
from governance.pipeline.selectors import dataset_shields
from governance.quality.models import RuleKind


class PromotedByRunFilter(IdInputFilter):
    # A typed run id (indexed foreign key): the records one promotion wrote.
    title = "run id"
    parameter_name = "run"
    field_name = "run"


ENCRYPTED_SHOWN = chart_selectors.ENCRYPTED_SHOWN
TAGGED_NOTE = "PII replaced by its type; the original is kept encrypted."


def _business_key_shown(shield, key_fields: list[str], business_key: str, data: dict) -> str:
    """The key as this reader may see it: whole, or protected if any key field is masked.

    A record keeps the key it was made with (chart.reprotect): under an earlier definition
    of the dataset's key its parts are other fields' values, which the current key fields'
    levels do not cover, so such a key is protected. Each part is either a keyed token
    (nothing to hide) or the current key field's value as the record holds it.
    """
    if not business_key:
        return business_key
    parts = key_parts(business_key, key_fields)
    made_with_these_fields = parts is not None and all(
        is_token(part) or part == str((data or {}).get(name)) for name, part in parts
    )
    if made_with_these_fields and all(
        shield.clearance.sees(shield.level_of(name)) for name in key_fields
    ):
        return business_key
    return PROTECTED_TEXT


def chart_values(shield, record: ChartRecord) -> list[tuple[ShownValue, str]]:
    """(shown value, what a reveal would read) of each data field and extra of a record.

    Encrypted values show as [encrypted] to everyone (a cleared reader reveals them one at
    a time); a tagged value shows its text at its field's level, its PII already replaced.
    """
    sealed = record.sealed or {}
    rows = []
    for name, value in (record.data or {}).items():
        if is_encrypted(value):
            shown = shield.field(name, value)
            rows.append((replace(shown, value=ENCRYPTED_SHOWN, masked=True), VALUE))
        elif name in sealed.get("data", {}):
            rows.append((shield.field(name, value), ORIGINAL))
        else:
            rows.append((shield.field(name, value), ""))
    for name, value in (record.extras or {}).items():
        shown = shield.field(name, value)
        rows.append((shown, EXTRA if name in sealed.get("extras", {}) else ""))
    return rows


@admin.register(ChartRecord)
class ChartRecordAdmin(ValuesAdminMixin, LargeTableAdmin, ReadOnlyAdmin):
    """Validated records. Values are typed in the table (restricted ones encrypted); this
    page and the export show each as the reader may see it, with Reveal where allowed."""

    list_display = ("id", "dataset", "business_key", "is_current", "run", "created_at")
    list_filter = ("is_current", "dataset", PromotedByRunFilter)
    list_select_related = ("dataset", "run")
    raw_id_fields = ("dataset", "raw_record", "superseded_by", "run")
    ordering = ("-id",)
    fields = (
        "dataset",
        "raw_record",
        "business_key",
        "is_current",
        "superseded_by",
        "run",
        "created_at",
        "protection_version",
        "issues",
    )
    change_form_template = "admin/chart/chartrecord/change_form.html"

    def csv_export_fields(self, request):
        # The values too, protected row by row; never the tokens or sealed originals.
        exported = super().csv_export_fields(request)
        return exported + [self.model._meta.get_field(name) for name in ("data", "extras")]

    def shield_object(self, request, obj) -> None:
        shield = self.shields(request)(obj.dataset_id)
        obj.business_key = _business_key_shown(
            shield, obj.dataset.business_key, obj.business_key, obj.data
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if record is not None:
            shield = self.shields(request)(record.dataset_id)
            stored = self.stored(record)
            clearance = shield.clearance
            rows = []
            for shown, part in chart_values(shield, stored):
                may_reveal = bool(part) and clearance.is_cleared_for(
                    reveal_level(stored, part, shown.name, clearance)
                )
                rows.append(
                    self.value_row(
                        record,
                        replace(shown, revealable=may_reveal),
                        part=part or VALUE,
                        note=TAGGED_NOTE if part in (ORIGINAL, EXTRA) else "",
                    )
                )
            context.update(value_rows=rows, values_title="Values")
        return super().change_view(request, object_id, form_url, extra_context=context)

    def reveal_target(self, request, obj, part, field_name):
        stored = self.stored(obj)
        if (part, field_name) not in protected_parts(stored):
            return None
        clearance = self.clearance(request)
        return RevealTarget(
            level_id=reveal_level(stored, part, field_name, clearance),
            read=lambda: read_protected(stored, part, field_name),
            label=field_name if part == VALUE else f"{field_name} ({part})",
        )

    def protect_export_row(self, request, columns):
        shields = self.shields(request)
        position = {name: index for index, name in enumerate(columns)}
        key_fields = dict(Dataset.objects.values_list("pk", "business_key"))

        def protect(row: tuple) -> tuple:
            row = list(row)
            shield = shields(row[position["dataset_id"]])
            record = ChartRecord(
                dataset_id=row[position["dataset_id"]],
                data=row[position["data"]],
                extras=row[position["extras"]],
                sealed={},
            )
            values = {shown.name: shown.value for shown, _ in chart_values(shield, record)}
            row[position["data"]] = {name: values[name] for name in record.data or {}}
            row[position["extras"]] = {name: values[name] for name in record.extras or {}}
            if "business_key" in position:
                row[position["business_key"]] = _business_key_shown(
                    shield,
                    key_fields.get(record.dataset_id) or [],
                    row[position["business_key"]],
                    record.data,
                )
            return tuple(row)

        return protect


# --- Quarantine review -----------------------------------------------------------------
# Filter choices come from small tables (the catalog, contracts, recent runs) or from the
# code, never from a DISTINCT over quarantined records, which may be millions.

PARSE_REASON = "parse"
RUN_CHOICES = 15


def _chosen_dataset(request) -> str | None:
    value = request.GET.get("dataset__id__exact", "")
    return value if value.isdigit() else None


class QuarantineRunFilter(admin.SimpleListFilter):
    """The run that quarantined a record, or one that re-processed it."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = Run.objects.filter(kind=RunKind.PROMOTE_CHART, rows_quarantined__gt=0)
        if dataset := _chosen_dataset(request):
            runs = runs.filter(dataset_id=dataset)
        return [
            (str(run.pk), f"run {run.pk} · {run.created_at:%Y-%m-%d %H:%M} · {run.triggered_by}")
            for run in runs.order_by("-id")[:RUN_CHOICES]
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(Q(run_id=value) | Q(reprocess_run_id=value))


class ReasonFieldFilter(admin.SimpleListFilter):
    """Records with a reason about this field (with the chosen rule, when one is chosen)."""

    title = "field"
    parameter_name = "field"

    def lookups(self, request, model_admin):
        fields = DatasetField.objects.all()
        if dataset := _chosen_dataset(request):
            fields = fields.filter(dataset_id=dataset)
        names = fields.order_by("name").values_list("name", flat=True).distinct()[:200]
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        reason = {"field": self.value()}
        if rule := request.GET.get(ReasonRuleFilter.parameter_name):
            reason["rule"] = rule  # the same reason, not two reasons of one record
        # jsonb containment, answered by the GIN index on reasons.
        return queryset.filter(reasons__contains=[reason])


class ReasonRuleFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        return [(PARSE_REASON, "Line could not be parsed"), *RuleKind.choices]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(reasons__contains=[{"rule": self.value()}])


class QuarantineChangeList(LightChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The reasons column needs `reasons`, a jsonb column LightChangeList leaves unread.
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(None).defer("corrected_payload", "resolution_note")


class BulkCorrectionForm(forms.Form):
    field = forms.CharField(max_length=63, help_text="The field to correct, e.g. country.")
    only_where = forms.CharField(
        required=False,
        max_length=500,
        label="Only where it is",
        help_text="Correct only the records holding this value (e.g. UK); empty: all of them.",
    )
    value = forms.CharField(
        required=False, max_length=500, label="Set it to", help_text="The new value, e.g. GB."
    )


class DismissForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why these records are not promoted; kept on each record and in the audit log.",
    )


VALUE_PREFIX = "value:"


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(ValuesAdminMixin, LargeTableAdmin, AuditedModelAdmin):
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

    @admin.action(
        description="Correct a field in the selected records, then re-process them",
        permissions=["change"],
    )
    def correct_selected(self, request, queryset):
        form = BulkCorrectionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                corrected = correct_field_in_bulk(
                    records=queryset.select_related("dataset"),
                    field=data["field"],
                    value=data["value"],
                    only_where=data["only_where"] if data["only_where"] != "" else None,
                    actor=request.user,
                )
            except QuarantineReviewError as error:
                messages.error(request, str(error))
                return None
            if not corrected:
                messages.warning(request, "No open record held that value: nothing corrected.")
                return None
            messages.success(request, f"Corrected {data['field']} in {len(corrected)} record(s).")
            self._report_runs(request, reprocess_quarantined(records=corrected, actor=request.user))
            return None
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/chart/quarantinedrecord/correct_selected.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Correct a field in quarantined records",
                "form": form,
                "limit": BULK_CORRECTION_LIMIT,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "action": "correct_selected",
            },
        )

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
        if chosen := _chosen_dataset(request):
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

    # --- Pages ---------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        views = {
            "correct": self.correct_view,
            "reprocess": self.reprocess_view,
            "dismiss": self.dismiss_view,
        }
        return [
            *(
                path(
                    f"<path:object_id>/{name}/",
                    self.admin_site.admin_view(require_POST(view)),
                    name=f"{info[0]}_{info[1]}_{name}",
                )
                for name, view in views.items()
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, unquote(object_id))
        context = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete_link": False,
            **(self.review_context(request, record) if record is not None else {}),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def review_context(self, request, record: QuarantinedRecord) -> dict:
        raw = raw_record_of(record)
        received = raw.payload if raw is not None and isinstance(raw.payload, dict) else {}
        current = current_payload(record, raw)
        shield = self.shields(request)(record.dataset_id)
        contract = {
            f.name: f
            for f in DatasetField.objects.filter(dataset_id=record.dataset_id).select_related(
                "classification"
            )
        }
        reasons_by_field: dict[str, list[dict]] = {}
        for reason in record.reasons:
            reasons_by_field.setdefault(reason.get("field", ""), []).append(reason)
        names = list(contract) + [name for name in current if name not in contract]
        # Fields with a reason first: they are what the steward came to fix.
        names.sort(key=lambda name: name not in reasons_by_field)
        rows = []
        for name in names:
            shown = shield.field(name, current.get(name))
            rows.append(
                {
                    "name": name,
                    "input_name": VALUE_PREFIX + name,
                    "contract": contract.get(name),
                    "received": _shown(shield.value(name, received.get(name)))
                    if name in received
                    else None,
                    "value": _shown(shown.value),
                    "masked": shown.masked,
                    "reveal_url": self.reveal_url(record, "current", name)
                    if shown.revealable
                    else "",
                    "corrected": record.corrected_payload is not None
                    and name in record.corrected_payload
                    and record.corrected_payload.get(name) != received.get(name),
                    "reasons": reasons_by_field.get(name, []),
                }
            )
        may_review = record.status == QuarantineStatus.OPEN and self.has_change_permission(
            request, record
        )
        return {
            "raw": raw,
            "raw_text": shield.line(raw.raw_text, parsed=raw.payload is not None) if raw else "",
            "field_rows": rows,
            "record_reasons": reasons_by_field.get("", []),
            "reasons": record.reasons,
            "may_review": may_review,
            "dismiss_form": DismissForm(),
            "dataset_url": reverse(
                "admin:pipeline_dataset_change",
                args=[record.dataset_id],
                current_app=self.admin_site.name,
            ),
            "run_url": _run_url(record.run_id, self.admin_site.name),
            "reprocess_run_url": _run_url(record.reprocess_run_id, self.admin_site.name),
            "chart_url": reverse(
                "admin:chart_chartrecord_change",
                args=[record.chart_record_id],
                current_app=self.admin_site.name,
            )
            if record.chart_record_id
            else "",
        }

    def reveal_target(self, request, obj, part, field_name):
        """A value re-processing will judge, of a field whose level requires encryption."""
        if part != "current":
            return None
        payload = current_payload(obj, raw_record_of(obj))
        shield = self.shields(request)(obj.dataset_id)
        level = shield.clearance.level(shield.level_of(field_name))
        if field_name not in payload or level is None or not level.requires_encryption:
            return None
        return RevealTarget(
            level_id=level.id, read=lambda: _shown(payload[field_name]), label=field_name
        )

    def _review_record(self, request, object_id) -> QuarantinedRecord:
        record = self.get_object(request, unquote(object_id))
        if record is None:
            raise Http404("No such quarantined record.")
        if not self.has_change_permission(request, record):
            raise PermissionDenied
        return record

    def _back(self, record: QuarantinedRecord) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(
                "admin:chart_quarantinedrecord_change",
                args=[record.pk],
                current_app=self.admin_site.name,
            )
        )

    def correct_view(self, request, object_id):
        record = self._review_record(request, object_id)
        shield = self.shields(request)(record.dataset_id)
        # What the page showed: a box left as it was (even masked) is no correction.
        shown = {
            name: _shown(shield.value(name, value))
            for name, value in current_payload(record, raw_record_of(record)).items()
        }
        values = {
            key.removeprefix(VALUE_PREFIX): value
            for key, value in request.POST.items()
            if key.startswith(VALUE_PREFIX)
            # Only what the steward changed: an untouched box would turn a number or
            # a null into text.
            and value != shown.get(key.removeprefix(VALUE_PREFIX), "")
        }
        try:
            correct_quarantined_values(record=record, values=values, actor=request.user)
        except QuarantineReviewError as error:
            messages.error(request, f"Not corrected: {error}.")
        else:
            if values:
                self.log_change(request, record, f"Corrected {', '.join(sorted(values))}.")
                messages.success(
                    request,
                    f"Corrected {', '.join(sorted(values))}. Re-process the record to "
                    "send it through the promotion again.",
                )
            else:
                messages.info(request, "No value was changed.")
        return self._back(record)

    def reprocess_view(self, request, object_id):
        record = self._review_record(request, object_id)
        runs = reprocess_quarantined(records=[record], actor=request.user)
        self.log_change(request, record, f"Re-processed in run {runs[0].pk}.")
        self._report_runs(request, runs)
        return self._back(record)

    def dismiss_view(self, request, object_id):
        record = self._review_record(request, object_id)
        try:
            dismissed = dismiss_quarantined(
                records=[record], actor=request.user, reason=request.POST.get("reason", "")
            )
        except QuarantineReviewError as error:
            messages.error(request, f"Not dismissed: {error}.")
        else:
            if dismissed:
                self.log_change(request, record, "Dismissed.")
                messages.success(request, "Dismissed.")
            else:
                messages.warning(request, "Only an open record can be dismissed.")
        return self._back(record)

    # --- Actions -------------------------------------------------------------------------

    @admin.action(
        description="Re-process the selected records through the promotion",
        permissions=["change"],
    )
    def reprocess_selected(self, request, queryset):
        self._report_runs(request, reprocess_quarantined(records=queryset, actor=request.user))

    @admin.action(
        description="Dismiss the selected records (a reason is required)", permissions=["change"]
    )
    def dismiss_selected(self, request, queryset):
        form = DismissForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            dismissed = dismiss_quarantined(
                records=queryset, actor=request.user, reason=form.cleaned_data["reason"]
            )
            messages.success(request, f"Dismissed {dismissed} record(s); others were not open.")
            return None
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/chart/quarantinedrecord/dismiss_selected.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Dismiss quarantined records",
                "form": form,
                "records": queryset.select_related("dataset")[:50],
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "action": "dismiss_selected",
            },
        )

    def _report_runs(self, request, runs: list[Run]) -> None:
        for run in runs:
            link = format_html(
                '<a href="{}">run {}</a>', _run_url(run.pk, self.admin_site.name), run.pk
            )
            if run.status == "skipped":
                messages.warning(
                    request, format_html("{} was skipped: {}. Try again shortly.", link, run.error)
                )
            elif run.status == "failed":
                messages.error(request, format_html("{} failed: {}", link, run.error))
            else:
                messages.success(
                    request,
                    format_html(
                        "{} ({}): {} record(s) re-processed, {} promoted to chart, "
                        "{} still quarantined.",
                        link,
                        run.dataset.slug,
                        run.rows_in,
                        run.rows_promoted,
                        run.rows_quarantined,
                    ),
                )


def _shown(value) -> str:
    """A payload value as the steward reads and types it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return to_json(value)


def _run_url(run_id: int | None, site_name: str) -> str:
    if run_id is None:
        return ""
    return reverse("admin:pipeline_run_change", args=[run_id], current_app=site_name)


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
class PiiFindingAdmin(ReadableDatasetsMixin, LargeTableAdmin, ReadOnlyAdmin):
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        finding = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if finding is not None:
            shield = dataset_shields(request.user)(finding.dataset_id)
            context["value_pieces"] = chart_selectors.finding_in_its_value(
                finding=finding, shield=shield
            )
            context["value_context"] = shield.clearance.sees(shield.level_of(finding.field_name))
        return super().change_view(request, object_id, form_url, extra_context=context)
