"""Building blocks every Atlas admin uses.

- `AuditedModelAdmin`: every add, change and delete made in the admin (forms, inlines,
  list_editable, the delete action) appends an audit log entry with before/after values.
- `LargeTableAdmin`: cheap changelists over huge and partitioned tables.
- `ReadOnlyAdmin`: rows the pipeline writes (runs, records, facts…) are history;
  people look at them, they never edit them by hand.
- `CsvExportMixin` (part of the first two): the "Export selected as CSV" action, streamed,
  audited, for whoever may view the rows, with spreadsheet formulas defused (`csv_cell`).
"""

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IS_POPUP_VAR, ActionLocation
from django.contrib.admin.views.main import ChangeList
from django.contrib.postgres.fields import ArrayField
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.functional import cached_property

from atlas_site.partitions import estimated_rows
from atlas_site.schemas import sql_table
from governance.compliance.clearance import Clearance
from governance.compliance.models import AuditAction
from governance.compliance.services import changed_values, record_audit, snapshot
from governance.compliance.tokens import fingerprint

ADMIN_DETAIL = "Made in the admin."

# --- Auditing ------------------------------------------------------------------------


def _hidden(value: Any) -> str | None:
    # A keyed fingerprint shows that a secret changed without storing anything readable.
    if value in (None, ""):
        return value
    return "hidden:" + fingerprint(str(value))


def _cascade_note(deleted: dict[str, int], model: type[models.Model], own_count: int) -> str:
    others = {
        label: count for label, count in deleted.items() if count and label != model._meta.label
    }
    if not others:
        return ADMIN_DETAIL
    listed = ", ".join(f"{label}: {count}" for label, count in sorted(others.items()))
    subject = "this deletion" if own_count == 1 else f"this deletion of {own_count} objects"
    return f"{ADMIN_DETAIL} Rows {subject} also deleted (cascade): {listed}."


# --- CSV export -----------------------------------------------------------------------

# A spreadsheet reads a cell starting with one of these as a formula (or, for tab, carriage
# return, line feed and space, strips them and reads what follows as one; some read the
# full-width equals sign U+FF1D as "="): "CSV injection".
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", " ", "\uff1d")
CSV_CHUNK_ROWS = 2000


def csv_cell(value: Any) -> str:
    """One exported value as text a spreadsheet shows as text, never runs as a formula.

    A text starting with =, +, -, @, tab, carriage return, line feed, space or a
    full-width equals sign (U+FF1D) gets a leading single quote, which spreadsheets read
    as "this is text" and do not display. Numbers stay numbers:
    -5 is not a formula. JSON values are exported as JSON text, escaped the same way.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    elif isinstance(value, datetime | date):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


class CsvExportMixin:
    """Adds "Export selected as CSV" to a changelist, for whoever may view its rows.

    The columns are the model fields its change page shows (so nothing the admin hides,
    and never `audit_hidden_fields`), the primary key first. Rows are streamed from a
    server-side cursor, so a selection of every row of a huge table stays in bounded
    memory. Each export is audited: who, which columns, which rows or filters.
    """

    csv_export_exclude: tuple[str, ...] = ()
    # Rows hold record values: the audit entry names the clearances the reader held.
    export_holds_values = False

    def protect_export_row(self, request, columns: list[str]) -> Callable[[tuple], tuple] | None:
        """A function turning an exported row into what this reader may see; None: as is.

        Admins over record values (raw, chart, quarantined records, facts) mask each value
        the reader is not cleared for, field by field, as their pages do.
        """
        return None

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        if self.actions is None or IS_POPUP_VAR in request.GET:
            return actions
        action = self.get_action("export_selected_as_csv", action_location)
        if action is not None and self.has_view_permission(request):
            actions[action.name] = action
        return actions

    def csv_export_fields(self, request) -> list[models.Field]:
        shown = set(self.get_fields(request)) | set(self.get_readonly_fields(request))
        hidden = set(getattr(self, "audit_hidden_fields", ())) | set(self.csv_export_exclude)
        fields = [
            field
            for field in self.model._meta.concrete_fields
            if (field.primary_key or field.name in shown) and field.name not in hidden
        ]
        return sorted(fields, key=lambda field: not field.primary_key)  # stable: pk first

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected_as_csv(self, request, queryset):
        fields = self.csv_export_fields(request)
        columns = [field.attname for field in fields]
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        every_match = request.POST.get("select_across") == "1"
        after = {
            "columns": columns,
            "rows": "every row matching the filters" if every_match else selected,
            "filters": request.GET.urlencode(),
        }
        detail = "Exported as CSV: " + (
            "every row matching the list's filters."
            if every_match
            else f"{len(selected)} selected rows."
        )
        if self.export_holds_values:
            cleared = Clearance.for_user(request.user).cleared_level_names()
            after["clearance"] = cleared
            detail += (
                f" With clearance for {', '.join(cleared)}: those levels' values in clear."
                if cleared
                else " Without clearance: protected values masked."
            )
        record_audit(
            actor=request.user,
            action=AuditAction.ACTION,
            object_type=self.model._meta.label_lower,
            after=after,
            detail=detail,
        )
        rows = queryset.values_list(*columns).iterator(chunk_size=CSV_CHUNK_ROWS)
        protect = self.protect_export_row(request, columns)
        if protect is not None:
            rows = map(protect, rows)
        response = StreamingHttpResponse(
            csv_lines([field.verbose_name for field in fields], rows),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = (
            f'attachment; filename="{self.model._meta.model_name}-{stamp}.csv"'
        )
        return response


class AuditedModelAdmin(CsvExportMixin, admin.ModelAdmin):
    """A ModelAdmin whose every write appends an audit entry with before and after values.

    The "before" values are read from the database row (locked) just before saving,
    so they are what was stored, not what the form was built from. A save is
    audited once its many-to-many values are saved too (in `save_related`, which the
    admin calls right after `save_model` on the add/change form and list_editable).
    Custom actions of a subclass must call services that audit.
    """

    # Fields whose values never reach the audit log (only a fingerprint does).
    audit_hidden_fields: tuple[str, ...] = ()

    def audit_snapshot(self, obj: models.Model) -> dict[str, Any]:
        values = snapshot(obj)
        if obj.pk is not None:
            for field in obj._meta.many_to_many:
                values[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
        for name in self.audit_hidden_fields:
            if name in values:
                values[name] = _hidden(values[name])
        return values

    def stored_snapshot(self, obj: models.Model, *, lock: bool = True) -> dict[str, Any]:
        """The row as the database holds it now (locked, so a concurrent save waits).

        Read back after a save too: the form's values are not always what is stored
        (a Decimal "0.95" is stored as 0.9500), and the audit keeps what is stored.
        """
        rows = type(obj)._base_manager.using(obj._state.db)
        stored = (rows.select_for_update() if lock else rows).get(pk=obj.pk)
        return self.audit_snapshot(stored)

    def audit_save(self, request, obj: models.Model, before: dict | None) -> None:
        """The audit entry of a save: `before` is the stored snapshot (None: created)."""
        after = self.stored_snapshot(obj, lock=False)
        if before is None:
            record_audit(
                actor=request.user,
                action=AuditAction.CREATE,
                instance=obj,
                after=after,
                detail=ADMIN_DETAIL,
            )
            return
        old, new = changed_values(before, after)
        record_audit(
            actor=request.user,
            action=AuditAction.UPDATE,
            instance=obj,
            before=old,
            after=new,
            detail=ADMIN_DETAIL,
        )

    def _audit_deletion(self, request, identity: dict, before: dict, detail: str) -> None:
        record_audit(
            actor=request.user, action=AuditAction.DELETE, before=before, detail=detail, **identity
        )

    @staticmethod
    def _identity(obj: models.Model) -> dict[str, str]:
        # Taken before the deletion: afterwards the instance has no pk.
        return {
            "object_type": obj._meta.label_lower,
            "object_id": str(obj.pk),
            "object_repr": str(obj),
        }

    def save_model(self, request, obj, form, change):
        with transaction.atomic(using=obj._state.db):
            before = self.stored_snapshot(obj) if change else None
            super().save_model(request, obj, form, change)
        obj._atlas_audit_before = before

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        if hasattr(obj, "_atlas_audit_before"):
            before = obj.__dict__.pop("_atlas_audit_before")
            self.audit_save(request, obj, before)

    def save_formset(self, request, form, formset, change):
        """Inline rows (e.g. a dataset's fields) are audited one by one, like the parent."""
        with transaction.atomic():
            instances = formset.save(commit=False)  # nothing is written or deleted yet
            for obj in formset.deleted_objects:
                self.delete_audited(request, obj)
            saved = []
            for obj in instances:
                before = None if obj._state.adding else self.stored_snapshot(obj)
                obj.save()
                saved.append((obj, before))
            formset.save_m2m()
            for obj, before in saved:
                self.audit_save(request, obj, before)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            # Django also counts protected rows as rows the user would need permission
            # to delete, and then says only that. They are never deleted: what blocks
            # the deletion is the protection, so the page lists what is protected.
            perms_needed = set()
        return deleted, model_count, perms_needed, protected

    def delete_audited(self, request, obj: models.Model) -> None:
        """Delete one object and audit it (inside the caller's transaction)."""
        identity, before = self._identity(obj), self.audit_snapshot(obj)
        _count, deleted = obj.delete()
        self._audit_deletion(request, identity, before, _cascade_note(deleted, type(obj), 1))

    def delete_model(self, request, obj):
        with transaction.atomic(using=obj._state.db):
            self.delete_audited(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic(using=queryset.db):
            doomed = [(self._identity(obj), self.audit_snapshot(obj)) for obj in queryset]
            _count, deleted = queryset.delete()
            detail = _cascade_note(deleted, queryset.model, len(doomed))
            for identity, before in doomed:
                self._audit_deletion(request, identity, before, detail)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the pipeline writes: shown to whoever may view them, changed by nobody here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Large tables ----------------------------------------------------------------------


class AtLeast(int):
    """A count that stopped at its cap; shown as "10000+"."""

    def __str__(self) -> str:
        return f"{int(self)}+"


class About(int):
    """A planner estimate; shown as "~1234567"."""

    def __str__(self) -> str:
        return f"~{int(self)}"


def estimated_row_count(model: type[models.Model], using: str = "default") -> int:
    """Rows in a table (all partitions of a partitioned one) by PostgreSQL's statistics
    (`atlas_site.partitions.estimated_rows`)."""
    with connections[using].cursor() as cursor:
        return estimated_rows(sql_table(model), cursor)


class EstimatedCountPaginator(Paginator):
    """Never runs a full COUNT(*) over a huge table.

    Unfiltered, a large table is counted by the planner's estimate (pg_class.reltuples
    of the table or of all its partitions). Otherwise rows are counted up to
    `count_cap` (COUNT over a LIMITed subquery), which stays cheap however many match.
    """

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return super().count
        if not queryset.query.where:
            estimate = estimated_row_count(queryset.model, queryset.db)
            if estimate > self.count_cap:
                return About(estimate)
        counted = queryset[: self.count_cap + 1].count()
        return AtLeast(self.count_cap) if counted > self.count_cap else counted


class LightChangeList(ChangeList):
    """Leaves the heavy columns (jsonb, text, arrays) not shown in the list unread."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        shown = set(self.list_display)
        heavy = [
            field.name
            for field in self.model._meta.concrete_fields
            if isinstance(field, models.JSONField | models.TextField | ArrayField)
            and field.name not in shown
        ]
        return queryset.defer(*heavy) if heavy else queryset


class LargeTableAdmin(CsvExportMixin):
    """Mixin for admins over huge or partitioned tables (put it before the ModelAdmin).

    No full COUNT(*) (estimated or capped counts, no "N total"), no facet counts, no
    sorting by clicking a column (a sort over an unindexed column reads every row),
    heavy columns left unread in the list. Subclasses name their foreign keys in
    `raw_id_fields` (no <select> of every row) and `list_select_related`.
    """

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ()
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return LightChangeList


# --- Filters -------------------------------------------------------------------------


def _add_months(day: date | datetime, months: int) -> date | datetime:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=1)


class RecentPeriodFilter(admin.DateFieldListFilter):
    """Django's date filter plus quarters; every choice is a constant range on the field.

    A constant range on a partition key lets PostgreSQL read only the partitions in
    it, which `date_hierarchy` (a DISTINCT over the dates of every row) would not.
    """

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        now = timezone.localtime() if timezone.is_aware(timezone.now()) else timezone.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if not isinstance(field, models.DateTimeField):
            today = today.date()
        quarter = _add_months(today, -((today.month - 1) % 3))
        since, until = self.lookup_kwarg_since, self.lookup_kwarg_until
        quarters = (
            ("This quarter", {since: quarter, until: _add_months(quarter, 3)}),
            ("Last quarter", {since: _add_months(quarter, -3), until: quarter}),
        )
        # After "This month", before "This year".
        self.links = self.links[:4] + quarters + self.links[4:]
