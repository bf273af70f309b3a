import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_filters import DateRangeFilter, IdInputFilter
from atlas_site.admin_values import ReadableDatasetsMixin, RevealTarget, ValuesAdminMixin
from explore.admin_ingest import LandingBatchAdminMixin
from explore.models import LandingBatch, RawRecord
from explore.selectors import raw_records_of

# --- Filters -----------------------------------------------------------------------------


class BatchFilter(IdInputFilter):
    title = "batch id"
    parameter_name = "batch"
    field_name = "batch"

    def queryset(self, request, queryset):
        wanted = self.clean_id(request)
        if wanted is None:
            return queryset
        if wanted < 0:
            return queryset.none()
        batch = (
            LandingBatch.objects.filter(pk=wanted)
            .only("received_at", "first_raw_id", "last_raw_id")
            .first()
        )
        if batch is None:
            messages.error(request, f"There is no landing batch {wanted}.")
            return queryset.none()
        # One month's partition, along the primary key over the batch's id range.
        return raw_records_of(batch, queryset)


# --- Admins ------------------------------------------------------------------------------


@admin.register(LandingBatch)
class LandingBatchAdmin(
    ReadableDatasetsMixin, LandingBatchAdminMixin, LargeTableAdmin, ReadOnlyAdmin
):
    """Batches are stored and loaded by the ingestion service, not typed in here."""

    list_display = (
        "id",
        "dataset",
        "original_name",
        "format",
        "status",
        "received_at",
        "lines_total",
        "rows_total",
        "rows_parsed",
        "rows_failed",
    )
    list_filter = ("status", "format", ("received_at", DateRangeFilter), "dataset")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset", "uploaded_by")
    ordering = ("-id",)
    # Exact matches only: the file's digest, or its name (batches number one per file,
    # far fewer than records, but a substring search would still read them all).
    search_fields = ("=sha256", "=original_name")
    search_help_text = "An exact file name or SHA-256."


@admin.register(RawRecord)
class RawRecordAdmin(ValuesAdminMixin, LargeTableAdmin, ReadOnlyAdmin):
    """Lines exactly as received: the table is huge and partitioned by month.

    Stored as received, shown as the reader may see them: each payload field at its
    contract level, a field outside the contract at the highest level, a line that did
    not parse at the dataset's highest level (governance.compliance.protection).
    """

    list_display = ("id", "received_at", "dataset", "batch", "line_number", "parse_error")
    # A received_at range reads only the months in it (partition pruning); a batch only
    # its own month's primary key over the batch's id range; a dataset walks the
    # (dataset, id) index newest first.
    list_filter = (("received_at", DateRangeFilter), "dataset", BatchFilter)
    list_select_related = ("dataset", "batch")
    raw_id_fields = ("batch", "dataset")
    ordering = ("-id",)

    fields = ("received_at", "dataset", "batch", "line_number", "parse_error", "raw_text")
    change_form_template = "admin/explore/rawrecord/change_form.html"

    def csv_export_fields(self, request):
        return [*super().csv_export_fields(request), self.model._meta.get_field("payload")]

    def shield_object(self, request, obj) -> None:
        if {"payload", "raw_text"} & obj.get_deferred_fields():
            return  # a list row: neither is read (nor shown)
        shield = self.shields(request)(obj.dataset_id)
        obj.raw_text = shield.line(obj.raw_text, parsed=obj.payload is not None)
        obj.payload = shield.payload(obj.payload)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if record is not None:
            stored = self.stored(record)
            shield = self.shields(request)(stored.dataset_id)
            context["value_rows"] = [
                self.value_row(record, shown)
                for shown in shield.fields(stored.payload, names=shield.field_levels)
            ]
            context["values_title"] = "Values as received"
        return super().change_view(request, object_id, form_url, extra_context=context)

    def reveal_target(self, request, obj, part, field_name):
        stored = self.stored(obj)
        payload = stored.payload if isinstance(stored.payload, dict) else {}
        shield = self.shields(request)(stored.dataset_id)
        level = shield.clearance.level(shield.level_of(field_name))
        if part != "value" or field_name not in payload or level is None:
            return None
        if not level.requires_encryption:
            return None  # shown in clear to whoever is cleared: nothing to reveal
        value = payload[field_name]
        return RevealTarget(
            level_id=level.id,
            read=lambda: value if isinstance(value, str) else json.dumps(value),
            label=field_name,
        )

    def protect_export_row(self, request, columns):
        shields = self.shields(request)
        position = {name: index for index, name in enumerate(columns)}

        def protect(row: tuple) -> tuple:
            row = list(row)
            shield = shields(row[position["dataset_id"]])
            payload = row[position["payload"]]
            if "raw_text" in position:
                row[position["raw_text"]] = shield.line(
                    row[position["raw_text"]], parsed=payload is not None
                )
            row[position["payload"]] = shield.payload(payload)
            return tuple(row)

        return protect

    def get_ordering(self, request):
        # One batch reads in line order, which is id order within a batch.
        if request.GET.get(BatchFilter.parameter_name, "").strip().isdigit():
            return ("id",)
        return super().get_ordering(request)
