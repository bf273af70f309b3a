"""List filters for tables with millions of rows, shared by every app's admin.

Each keeps its filter a constant condition on an indexed column or a partition key, so
a filtered page reads only what it shows.
"""

from datetime import datetime

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from atlas_site.admin_base import RecentPeriodFilter


def _kept_params(changelist, *own: str) -> list[tuple[str, str]]:
    """The list's other query parameters, for the hidden inputs of a filter's own form."""
    return [(key, value) for key, value in changelist.params.items() if key not in own]


class DateRangeFilter(RecentPeriodFilter):
    """The preset periods plus a typed range (from, before); either way a constant range.

    A constant range on a partition key (raw records' received_at, facts'
    period_start) lets PostgreSQL read only the partitions in it.
    """

    template = "admin/filters/date_range_filter.html"

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

    template = "admin/filters/id_input_filter.html"
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
