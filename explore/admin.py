from datetime import datetime

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin, RecentPeriodFilter
from explore.admin_ingest import LandingBatchAdminMixin
from explore.models import LandingBatch, RawRecord

# --- Filters for long lists -------------------------------------------------------------
# Both keep every filter a constant condition on an indexed column or a partition key,
# so a filtered page of a table with millions of rows reads only what it shows.


def _kept_params(changelist, *own: str) -> list[tuple[str, str]]:
    """The list's other query parameters, for the hidden inputs of a filter's own form."""
    return [(key, value) for key, value in changelist.params.items() if key not in own]


class DateRangeFilter(RecentPeriodFilter):
    """The preset periods plus a typed range (from, before); either way a constant range.

    A constant range on a partition key (raw records' received_at, facts'
    period_start) lets PostgreSQL read only the partitions in it.
    """

    template = "admin/explore/date_range_filter.html"

    def choices(self, changelist):
        # For the typed range's form: the list's other parameters, and the dates in force.
        self.kept_params = _kept_params(
            changelist, self.lookup_kwarg_since, self.lookup_kwarg_until
        )
        self.since_value = self.date_params.get(self.lookup_kwarg_since, "")[:10]
        self.until_value = self.date_params.get(self.lookup_kwarg_until, "")[:10]
        yield from super().choices(changelist)

    def queryset(self, request, queryset):
        bounds = {}
        for key in (self.lookup_kwarg_since, self.lookup_kwarg_until):
            values = self.used_parameters.get(key) or [""]
            value = values[-1].strip()
            if not value:
                continue  # the form sends an empty bound when only one is typed
            try:
                bound = self.field.to_python(value)
            except ValidationError:
                which = "from" if key == self.lookup_kwarg_since else "before"
                messages.error(
                    request,
                    f"{self.title.capitalize()} {which}: “{value}” is not a date "
                    "(YYYY-MM-DD); nothing is listed until it is corrected.",
                )
                return queryset.none()
            if isinstance(bound, datetime) and timezone.is_naive(bound):
                bound = timezone.make_aware(bound)
            bounds[key] = bound
        return queryset.filter(**bounds)


class IdInputFilter(admin.SimpleListFilter):
    """A typed id instead of a list of every row: there may be millions of batches or runs."""

    template = "admin/explore/id_input_filter.html"
    field_name = ""  # the model field filtered on, e.g. "batch"

    def lookups(self, request, model_admin):
        return ()

    def has_output(self):
        return True

    def choices(self, changelist):
        self.kept_params = _kept_params(changelist, self.parameter_name)
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
        }

    def clean_id(self, request) -> int | None:
        value = (self.value() or "").strip()
        if not value:
            return None
        if not value.isdigit():
            messages.error(
                request,
                f"{self.title.capitalize()}: “{value}” is not an id (a whole number); "
                "nothing is listed until it is corrected.",
            )
            return -1
        return int(value)

    def queryset(self, request, queryset):
        wanted = self.clean_id(request)
        if wanted is None:
            return queryset
        if wanted < 0:
            return queryset.none()
        return queryset.filter(**{f"{self.field_name}_id": wanted})


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
        batch = LandingBatch.objects.filter(pk=wanted).only("received_at").first()
        if batch is None:
            messages.error(request, f"There is no landing batch {wanted}.")
            return queryset.none()
        # Every raw record of a batch carries the batch's received_at: filtering on it
        # too reads one month's partition instead of probing every one.
        return queryset.filter(batch_id=wanted, received_at=batch.received_at)


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
    # its own month; a dataset walks the (dataset, id) index newest first.
    list_filter = (("received_at", DateRangeFilter), "dataset", BatchFilter)
    list_select_related = ("dataset", "batch")
    raw_id_fields = ("batch", "dataset")
    ordering = ("-id",)

    def get_ordering(self, request):
        # One batch is read in line order along its (batch, line, received_at) index:
        # "newest id first" would sort all of a large batch's rows for each page.
        if request.GET.get(BatchFilter.parameter_name, "").strip().isdigit():
            return ("batch_id", "line_number", "received_at")
        return super().get_ordering(request)
