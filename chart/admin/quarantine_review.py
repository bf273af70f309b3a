"""A quarantined record's review page: the raw record next to its reasons, each field's
received and current value as the reader may see them; correct values, re-process or
dismiss it (chart.reprocess checks the permission and audits each change).

QuarantineReviewMixin is mixed into QuarantinedRecordAdmin (quarantine.py).
"""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from atlas_site.admin_values import RevealTarget
from chart.admin.quarantine_common import DismissForm, report_runs, run_url
from chart.evaluation import to_json
from chart.models import QuarantinedRecord, QuarantineStatus
from chart.reprocess import (
    QuarantineReviewError,
    correct_quarantined_values,
    current_payload,
    dismiss_quarantined,
    raw_record_of,
    reprocess_quarantined,
)
from governance.pipeline.models import DatasetField

VALUE_PREFIX = "value:"


class QuarantineReviewMixin:
    """A record's review page and the correct, re-process and dismiss views behind it."""

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
            "run_url": run_url(record.run_id, self.admin_site.name),
            "reprocess_run_url": run_url(record.reprocess_run_id, self.admin_site.name),
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
        report_runs(request, runs, site_name=self.admin_site.name)
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


def _shown(value) -> str:
    """A payload value as the steward reads and types it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return to_json(value)
