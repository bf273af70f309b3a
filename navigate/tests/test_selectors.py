"""Reads of facts: typed values back from Fact.value."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from governance.pipeline.models import FieldType
from navigate.models import MetricDefinition
from navigate.selectors import decode_fact_value, value_type

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("aggregation", "value_field", "expected"),
    [
        ("count", "", FieldType.INTEGER),
        ("distinct_count", "customer", FieldType.INTEGER),
        ("avg", "quantity", FieldType.DECIMAL),
        ("sum", "quantity", FieldType.INTEGER),
        ("min", "order_date", FieldType.DATE),
        ("max", "ordered_at", FieldType.DATETIME),
    ],
)
def test_value_type_follows_the_aggregation_and_field(contract, aggregation, value_field, expected):
    metric = MetricDefinition(
        dataset=contract, aggregation=aggregation, value_field=value_field, time_field="ordered_at"
    )
    assert value_type(metric=metric) == expected


def test_decode_fact_value():
    assert decode_fact_value(value=Decimal("1767225600"), data_type=FieldType.DATE) == date(
        2026, 1, 1
    )
    assert decode_fact_value(
        value=Decimal("1767225600.123456"), data_type=FieldType.DATETIME
    ) == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert decode_fact_value(value=Decimal("19.99"), data_type=FieldType.DECIMAL) == Decimal(
        "19.99"
    )
    assert decode_fact_value(value=None, data_type=FieldType.DATE) is None
