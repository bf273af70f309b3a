from django.contrib import admin

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_filters import DateRangeFilter
from navigate.models import Fact, MetricDefinition


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(AuditedModelAdmin):
    list_display = ("slug", "name", "dataset", "aggregation", "value_field", "grain", "is_active")
    list_filter = ("is_active", "aggregation", "grain", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("updated_at",)


@admin.register(Fact)
class FactAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """Computed by promotions; partitioned by year of the period."""

    list_display = (
        "id",
        "metric",
        "dataset",
        "period_start",
        "grain",
        "value",
        "record_count",
        "computed_at",
    )
    # A period_start range reads only the years in it (partition pruning); a dataset
    # is its metrics (every dataset is listed: "only those with facts" would read them all).
    list_filter = (
        ("period_start", DateRangeFilter),
        "metric__dataset",
        "metric",
        "grain",
    )
    list_select_related = ("metric", "metric__dataset")
    raw_id_fields = ("metric", "run")
    ordering = ("-id",)

    @admin.display(description="dataset")
    def dataset(self, fact: Fact):
        return fact.metric.dataset
