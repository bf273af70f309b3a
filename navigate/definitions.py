"""What makes a metric definition computable: its rules, checked when it is saved.

A metric's value, time and dimension fields must be fields of its dataset's contract of
the right types, and facts never carry encrypted values (a distinct count of an
encrypted field counts its keyed tokens). MetricDefinition.clean() calls
`validate_metric_definition`; the promotion (navigate.services) uses the same types.
"""

from typing import Protocol

from django.core.exceptions import ValidationError
from django.db import models

from governance.pipeline.models import Dataset, DatasetField, FieldType


class MetricSpec(Protocol):
    """What a metric definition says (navigate.models.MetricDefinition is one)."""

    dataset: Dataset
    aggregation: str
    value_field: str
    time_field: str
    dimension_fields: list[str]

    @property
    def dataset_id(self) -> int | None: ...  # None: no dataset chosen yet

    def get_aggregation_display(self) -> str: ...


class Aggregation(models.TextChoices):
    COUNT = "count", "Count of records"
    SUM = "sum", "Sum"
    AVG = "avg", "Average"
    MIN = "min", "Minimum"
    MAX = "max", "Maximum"
    DISTINCT_COUNT = "distinct_count", "Distinct count"


class Grain(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    YEAR = "year", "Year"


NUMERIC_TYPES = frozenset({FieldType.INTEGER, FieldType.DECIMAL})
TIME_TYPES = frozenset({FieldType.DATE, FieldType.DATETIME})
# Which field types each aggregation accepts as its value field (count takes none).
VALUE_TYPES: dict[str, frozenset[str]] = {
    Aggregation.SUM: NUMERIC_TYPES,
    Aggregation.AVG: NUMERIC_TYPES,
    Aggregation.MIN: NUMERIC_TYPES | TIME_TYPES,
    Aggregation.MAX: NUMERIC_TYPES | TIME_TYPES,
    Aggregation.DISTINCT_COUNT: frozenset(FieldType.values),
}


def contract_fields(*, dataset: Dataset) -> dict[str, DatasetField]:
    """The dataset's contract fields by name, with their classification."""
    fields = DatasetField.objects.filter(dataset=dataset).select_related("classification")
    return {field.name: field for field in fields}


def _type_label(data_type: str) -> str:
    return FieldType(data_type).label.lower()


def _restriction(field: DatasetField) -> str | None:
    """The level's name when the field's values are encrypted in chart."""
    level = field.classification
    return level.name if level is not None and level.requires_encryption else None


def validate_metric_definition(*, metric: MetricSpec) -> None:
    """Refuse a metric that cannot be computed, or whose facts would carry encrypted values.

    An encrypted field can be counted distinct (over its keyed tokens), never summed,
    compared, placed in time or grouped by.

    Raises ValidationError keyed by the metric's field names, with every problem found.
    """
    if metric.dataset_id is None:
        return  # the dataset field's own validation reports it
    fields = contract_fields(dataset=metric.dataset)
    problems = {
        "value_field": _value_field_problems(metric, fields),
        "time_field": _time_field_problems(metric, fields),
        "dimension_fields": _dimension_problems(metric, fields),
    }
    errors = {key: messages for key, messages in problems.items() if messages}
    if errors:
        raise ValidationError(errors)


def _value_field_problems(metric: MetricSpec, fields: dict[str, DatasetField]) -> list[str]:
    value_field = metric.value_field
    aggregation = metric.aggregation
    if aggregation not in Aggregation.values:
        return []  # the aggregation field's own validation reports it
    if aggregation == Aggregation.COUNT:
        # A count counts records; a value field here would silently be ignored.
        return (
            [
                "A count of records takes no value field; use a distinct count to count "
                "the values of a field."
            ]
            if value_field
            else []
        )
    named = metric.get_aggregation_display().lower()
    if not value_field:
        return [f"A {named} needs a value field."]
    if value_field not in fields:
        return [f"'{value_field}' is not a field of the {metric.dataset.slug} contract."]
    field = fields[value_field]
    level = _restriction(field)
    if level and aggregation != Aggregation.DISTINCT_COUNT:
        # Encrypted values can be neither summed nor compared; equal values have
        # equal keyed tokens, so a distinct count is still possible.
        return [
            f"'{value_field}' is classified {level}; its values are encrypted, so a "
            f"{named} cannot use them (a distinct count can: it counts their keyed tokens)."
        ]
    allowed = VALUE_TYPES.get(aggregation, frozenset())
    if field.data_type not in allowed:
        wanted = ", ".join(sorted(_type_label(t) for t in allowed))
        return [
            f"'{value_field}' is {_type_label(field.data_type)}; a {named} needs one of: {wanted}."
        ]
    return []


def _time_field_problems(metric: MetricSpec, fields: dict[str, DatasetField]) -> list[str]:
    time_field = metric.time_field
    if not time_field:
        return ["A metric needs a time field to place its records in periods."]
    if time_field not in fields:
        return [f"'{time_field}' is not a field of the {metric.dataset.slug} contract."]
    field = fields[time_field]
    if level := _restriction(field):
        return [
            f"'{time_field}' is classified {level}; its values are encrypted and cannot "
            "place records in periods."
        ]
    if field.data_type not in TIME_TYPES:
        return [
            f"'{time_field}' is {_type_label(field.data_type)}; the time field must be a "
            "date or a date and time."
        ]
    return []


def _dimension_problems(metric: MetricSpec, fields: dict[str, DatasetField]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for name in metric.dimension_fields or []:
        if name in seen:
            problems.append(f"'{name}' is listed twice.")
            continue
        seen.add(name)
        if name not in fields:
            problems.append(f"'{name}' is not a field of the {metric.dataset.slug} contract.")
        elif level := _restriction(fields[name]):
            problems.append(f"'{name}' is classified {level}; facts never carry restricted values.")
    return problems
