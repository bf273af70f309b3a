"""The quarantine list's actions: correct a field in the selected records then re-process
them, re-process them, dismiss them (with a reason). Every change goes through
chart.reprocess, which checks the permission and audits it.

QuarantineActionsMixin is mixed into QuarantinedRecordAdmin (quarantine.py), which
lists these actions.
"""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from chart.admin.quarantine_common import DismissForm, report_runs
from chart.reprocess import (
    BULK_CORRECTION_LIMIT,
    QuarantineReviewError,
    correct_field_in_bulk,
    dismiss_quarantined,
    reprocess_quarantined,
)


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


class QuarantineActionsMixin:
    """The actions of the quarantine list (each needs the change permission)."""

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
            report_runs(
                request,
                reprocess_quarantined(records=corrected, actor=request.user),
                site_name=self.admin_site.name,
            )
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

    @admin.action(
        description="Re-process the selected records through the promotion",
        permissions=["change"],
    )
    def reprocess_selected(self, request, queryset):
        report_runs(
            request,
            reprocess_quarantined(records=queryset, actor=request.user),
            site_name=self.admin_site.name,
        )

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
