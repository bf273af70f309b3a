"""Validated records in the admin: each value as the reader may see it (typed, protected
or encrypted), with Reveal where allowed; the export protected row by row."""

from dataclasses import replace

from django.contrib import admin
from django.contrib.admin.utils import unquote

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_filters import IdInputFilter
from atlas_site.admin_values import RevealTarget, ValuesAdminMixin
from chart import selectors as chart_selectors
from chart.business_keys import key_parts
from chart.models import ChartRecord
from chart.protected import (
    EXTRA,
    ORIGINAL,
    VALUE,
    protected_parts,
    read_protected,
    reveal_level,
)
from governance.compliance.keys import is_encrypted
from governance.compliance.protection import PROTECTED_TEXT, ShownValue
from governance.compliance.tokens import is_token
from governance.pipeline.models import Dataset


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
