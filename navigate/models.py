from django.contrib.postgres.fields import ArrayField
from django.db import models

from atlas_site.schemas import NAVIGATE, qualified
from navigate.definitions import Aggregation, Grain, validate_metric_definition


class MetricDefinition(models.Model):
    """How a business fact is computed from a dataset's chart records."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    dataset = models.ForeignKey(
        "pipeline.Dataset", on_delete=models.PROTECT, related_name="metrics"
    )
    aggregation = models.CharField(max_length=16, choices=Aggregation)
    value_field = models.CharField(
        max_length=63, blank=True, help_text="Field aggregated; empty for a count of records."
    )
    time_field = models.CharField(max_length=63, help_text="Field that places a record in time.")
    grain = models.CharField(max_length=8, choices=Grain, default=Grain.DAY)
    dimension_fields = ArrayField(
        models.CharField(max_length=63),
        default=list,
        blank=True,
        help_text="Fields the facts are broken down by, comma separated.",
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(NAVIGATE, "metric_definition")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        validate_metric_definition(metric=self)


class Fact(models.Model):
    """One value of a metric for one period and one combination of dimension values.

    Partitioned by year of `period_start`; the database primary key is
    (id, period_start).
    """

    id = models.BigAutoField(primary_key=True)
    period_start = models.DateField()
    # Served by the (metric, period_start, dimension_key) unique index.
    metric = models.ForeignKey(
        MetricDefinition, on_delete=models.PROTECT, related_name="facts", db_index=False
    )
    grain = models.CharField(max_length=8, choices=Grain)
    dimensions = models.JSONField(default=dict, blank=True)
    dimension_key = models.CharField(
        max_length=64, help_text="Keyed HMAC of the dimension values, never shown: the upsert key."
    )
    value = models.DecimalField(max_digits=38, decimal_places=10, null=True)
    record_count = models.BigIntegerField(default=0)
    run = models.ForeignKey(
        "pipeline.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = qualified(NAVIGATE, "fact")
        ordering = ["metric", "-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "period_start", "dimension_key"], name="fact_metric_period_dims"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.period_start} = {self.value}"
