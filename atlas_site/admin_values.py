"""Record values on admin pages and in exports, as the reader may see them.

- `ReadableDatasetsMixin`: the rows of datasets limited to groups, only for their readers.
- `ValuesAdminMixin`: a record page's values table (each field at its level, masked for
  a reader without clearance, a Reveal link where the reader may reveal), its CSV export
  protected row by row, and the Reveal page: one value, a reason, audited
  (governance.compliance.reveal), shown once and never cached.

Each admin says how its rows hold values (`value_rows`, `protect_export_row`) and how
one protected value is read (`reveal_target`); the rules themselves live in
governance.compliance (clearance, protection, reveal).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from governance.compliance.clearance import Clearance
from governance.compliance.protection import ShownValue
from governance.compliance.reveal import REASON_MAX_LENGTH, Revealed, RevealRefusedError, reveal
from governance.pipeline.selectors import DatasetShields, dataset_shields, readable_dataset_ids

REVEAL_TEMPLATE = "admin/atlas/reveal.html"


@dataclass(frozen=True)
class ValueRow:
    """One row of a record page's values table."""

    shown: ShownValue
    part: str = "value"  # what a reveal reads (see reveal_target)
    reveal_url: str = ""
    note: str = ""  # e.g. "PII replaced by its type; the original is sealed"


@dataclass(frozen=True)
class RevealTarget:
    level_id: int | None
    read: Callable[[], str]
    label: str  # the field, as the audit entry and the page name it


class ReadableDatasetsMixin:
    """Rows of datasets limited to groups are left out for everyone else (Dataset.
    reader_groups): lists, pages and exports alike, as they all read get_queryset."""

    dataset_lookup = "dataset"  # the path from the row to its dataset

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        readable = getattr(request, "_atlas_readable", False)
        if readable is False:
            readable = request._atlas_readable = readable_dataset_ids(request.user)
        if readable is None:
            return queryset
        return queryset.filter(**{f"{self.dataset_lookup}__in": readable})


class ValuesAdminMixin(ReadableDatasetsMixin):
    """Protected values on a record page, in its export, and one-value reveals."""

    # The export writes values: its audit entry says which clearances the reader held.
    export_holds_values = True

    # --- Subclasses -------------------------------------------------------------------

    def reveal_target(self, request, obj, part: str, field_name: str) -> RevealTarget | None:
        """How to reveal one value of obj; None: nothing to reveal there."""
        return None

    def reveal(self, request, obj, target: RevealTarget, reason: str) -> Revealed:

        return reveal(
            actor=request.user,
            level_id=target.level_id,
            instance=obj,
            field_name=target.label,
            reason=reason,
            read=target.read,
        )

    def shield_object(self, request, obj) -> None:
        """Replace, in memory only, what obj shows of its values by what the reader may see.

        Applied to the object of every page (change, history, delete) and to each row of
        the list, so that no column or read-only field shows a value unprotected. The rows
        are read-only in the admin, so a shielded object is never saved.
        """

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.shield_object(request, obj)
        return obj

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        for obj in changelist.result_list:
            self.shield_object(request, obj)
        return changelist

    def stored(self, obj):
        """The row as stored (the page's object is shielded): for reading one value."""
        return type(obj)._default_manager.get(pk=obj.pk)

    # --- Helpers for subclasses ---------------------------------------------------------

    def clearance(self, request) -> Clearance:
        return Clearance.for_user(request.user)

    def shields(self, request) -> DatasetShields:
        """The reader's shield of each dataset, made once per request."""
        shields = getattr(request, "_atlas_shields", None)
        if shields is None:
            shields = request._atlas_shields = dataset_shields(request.user)
        return shields

    def reveal_url(self, obj, part: str, field_name: str) -> str:
        info = self.opts.app_label, self.opts.model_name
        base = reverse(
            f"admin:{info[0]}_{info[1]}_reveal", args=[obj.pk], current_app=self.admin_site.name
        )
        return f"{base}?{urlencode({'part': part, 'field': field_name})}"

    def value_row(self, obj, shown: ShownValue, part: str = "value", note: str = "") -> ValueRow:
        url = self.reveal_url(obj, part, shown.name) if shown.revealable else ""
        return ValueRow(shown=shown, part=part, reveal_url=url, note=note)

    # --- The Reveal page ---------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/reveal/",
                self.admin_site.admin_view(self.reveal_view),
                name=f"{info[0]}_{info[1]}_reveal",
            ),
            *super().get_urls(),
        ]

    def reveal_view(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id}.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        part = request.GET.get("part", "value")
        field_name = request.GET.get("field", "")
        target = self.reveal_target(request, obj, part, field_name)
        if target is None:
            raise Http404(f"{field_name!r} of this {self.opts.verbose_name} is not protected.")
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": f"Reveal {target.label}",
            "field_label": target.label,
            "change_url": change_url,
            "reason_max_length": REASON_MAX_LENGTH,
            "revealed": None,
            "error": "",
        }
        status = 200
        if request.method == "POST":
            try:
                context["revealed"] = self.reveal(
                    request, obj, target, request.POST.get("reason", "")
                )
            except RevealRefusedError as refusal:
                context["error"] = str(refusal)
                status = 403 if refusal.forbidden else 400
            else:
                self.log_change(request, obj, f"Revealed {target.label}.")
        elif not self.clearance(request).is_cleared_for(target.level_id):
            messages.error(request, f"You are not cleared to reveal {target.label}.")
            return HttpResponseRedirect(change_url)
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, REVEAL_TEMPLATE, context, status=status)
        # The value is shown once: never kept by a browser or a proxy.
        response["Cache-Control"] = "no-store"
        return response
