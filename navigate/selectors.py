"""Reads of the navigate layer."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet

from governance.pipeline.models import DatasetField, FieldType
from navigate.definitions import Aggregation
from navigate.models import Fact, MetricDefinition

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def facts_for_metric(
    *, metric: MetricDefinition, start: date | None = None, end: date | None = None
) -> QuerySet[Fact]:
    """The metric's facts for periods starting from `start` to `end` (both included).

    Filtering on `period_start` lets PostgreSQL skip the years' partitions outside the range.
    """
    facts = Fact.objects.filter(metric=metric)
    if start is not None:
        facts = facts.filter(period_start__gte=start)
    if end is not None:
        facts = facts.filter(period_start__lte=end)
    return facts.order_by("period_start", "dimensions")


def active_metrics(*, dataset_id: int) -> list[MetricDefinition]:
    """The dataset's active metric definitions, by slug."""
    return list(
        MetricDefinition.objects.filter(dataset_id=dataset_id, is_active=True).order_by("slug")
    )


def value_type(*, metric: MetricDefinition) -> str:
    """The type of the metric's fact values, as a contract field type."""
    if metric.aggregation in (Aggregation.COUNT, Aggregation.DISTINCT_COUNT):
        return FieldType.INTEGER
    if metric.aggregation == Aggregation.AVG:
        return FieldType.DECIMAL
    field = DatasetField.objects.filter(dataset=metric.dataset_id, name=metric.value_field).first()
    return field.data_type if field is not None else FieldType.DECIMAL


def decode_fact_value(*, value: Decimal | None, data_type: str) -> Decimal | date | datetime | None:
    """A fact's value as its type: the minimum or maximum of a date or datetime is
    stored as seconds since the Unix epoch (UTC), since Fact.value is numeric."""
    if value is None or data_type not in (FieldType.DATE, FieldType.DATETIME):
        return value
    # Whole microseconds through an integer: a float would lose some of them.
    moment = EPOCH + timedelta(microseconds=int(value * 1_000_000))
    return moment.date() if data_type == FieldType.DATE else moment
