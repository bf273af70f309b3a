from django.contrib import admin

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin, RecentPeriodFilter
from explore.admin_ingest import LandingBatchAdminMixin
from explore.models import LandingBatch, RawRecord


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
    list_filter = ("status", "format", ("received_at", RecentPeriodFilter), "dataset")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset", "uploaded_by")
    ordering = ("-id",)


@admin.register(RawRecord)
class RawRecordAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """Lines exactly as received: the table is huge and partitioned by month."""

    list_display = ("id", "received_at", "dataset", "batch", "line_number", "parse_error")
    # A received_at range reads only the months in it (partition pruning).
    list_filter = (("received_at", RecentPeriodFilter), "dataset")
    list_select_related = ("dataset", "batch")
    raw_id_fields = ("batch", "dataset")
    ordering = ("-id",)
