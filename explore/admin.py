from django.contrib import admin, messages

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_filters import DateRangeFilter, IdInputFilter
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
class LandingBatchAdmin(LandingBatchAdminMixin, LargeTableAdmin, ReadOnlyAdmin):
    """Batches are stored and loaded by the ingestion service, not typed in here."""

    list_display = (
        "id",
        "dataset",
        "original_name",
        "format",
        "status",
        "received_at",
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
class RawRecordAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """Lines exactly as received: the table is huge and partitioned by month."""

    list_display = ("id", "received_at", "dataset", "batch", "line_number", "parse_error")
    # A received_at range reads only the months in it (partition pruning); a batch only
    # its own month's primary key over the batch's id range; a dataset walks the
    # (dataset, id) index newest first.
    list_filter = (("received_at", DateRangeFilter), "dataset", BatchFilter)
    list_select_related = ("dataset", "batch")
    raw_id_fields = ("batch", "dataset")
    ordering = ("-id",)

    def get_ordering(self, request):
        # One batch reads in line order, which is id order within a batch.
        if request.GET.get(BatchFilter.parameter_name, "").strip().isdigit():
            return ("id",)
        return super().get_ordering(request)
