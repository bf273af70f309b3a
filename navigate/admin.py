from django.contrib import admin, messages
from django.http import StreamingHttpResponse
from django.utils import timezone

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_filters import DateRangeFilter
from atlas_site.admin_values import ValuesAdminMixin
from navigate.exports import ExportError, download_facts
from navigate.models import Fact, MetricDefinition


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(AuditedModelAdmin):
    list_display = ("slug", "name", "dataset", "aggregation", "value_field", "grain", "is_active")
    list_filter = ("is_active", "aggregation", "grain", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("updated_at",)
    actions = ["download_facts_as_csv"]

    def has_facts_permission(self, request) -> bool:
        return request.user.has_perm("navigate.view_fact")

    @admin.action(description="Download the metric's facts as CSV", permissions=["facts"])
    def download_facts_as_csv(self, request, queryset):
        """One metric's facts, streamed, each dimension as the reader may see it."""
        metrics = list(queryset.select_related("dataset")[:2])
        if len(metrics) != 1:
            self.message_user(request, "Choose one metric to download.", messages.WARNING)
            return None
        metric = metrics[0]
        try:
            _header, lines = download_facts(metric=metric, user=request.user)
        except ExportError as error:
            self.message_user(request, f"Not downloaded: {error}.", messages.ERROR)
            return None
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="facts-{metric.slug}-{stamp}.csv"'
        return response


@admin.register(Fact)
class FactAdmin(ValuesAdminMixin, LargeTableAdmin, ReadOnlyAdmin):
    """Computed by promotions; partitioned by year of the period.

    A fact's dimensions are values of its dataset's fields: each is shown at its field's
    level (masked without clearance), here and in the export.
    """

    dataset_lookup = "metric__dataset"
    # The upsert key is a keyed HMAC of the dimension values: of use to nobody here, and
    # a digest of values is not shown where the values themselves are masked.
    exclude = ("dimension_key",)

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

    def shield_object(self, request, obj) -> None:
        if "dimensions" in obj.get_deferred_fields() or not obj.dimensions:
            return
        shield = self.shields(request)(obj.metric.dataset_id)
        obj.dimensions = shield.payload(obj.dimensions)

    def protect_export_row(self, request, columns):
        if "dimensions" not in columns:
            return None
        position = columns.index("dimensions")
        dataset_of = dict(MetricDefinition.objects.values_list("pk", "dataset_id"))
        shields = self.shields(request)

        def protect(row: tuple) -> tuple:
            row = list(row)
            dataset_id = dataset_of.get(row[columns.index("metric_id")])
            if row[position] and dataset_id is not None:
                row[position] = shields(dataset_id).payload(row[position])
            return tuple(row)

        return protect
