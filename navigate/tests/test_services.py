"""Facts from chart records: definitions checked, aggregation in SQL, touched periods, lineage."""

import base64
import hashlib
import hmac
import importlib
import io
import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from chart.models import ChartRecord
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import ClassificationLevel
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import (
    DatasetField,
    FieldType,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    Transform,
)
from navigate.definitions import validate_metric_definition
from navigate.models import Fact, MetricDefinition
from navigate.selectors import decode_fact_value, facts_for_metric
from navigate.services import (
    record_lineage,
    refresh_facts,
    refresh_metric_facts,
    rekey_facts,
    touched_periods,
)

pytestmark = pytest.mark.django_db

_raw_ids = itertools.count(1)  # raw_record has no database constraint: any distinct id works

# (ordered_at, region, customer, amount, quantity). Spans an ISO week that starts in
# December 2025, a month boundary, two years; one time written with an offset (UTC
# day 2026-03-01), one amount missing.
ROWS = [
    ("2025-12-30T10:00:00+00:00", "north", "c1", "10.00", 1),
    ("2026-01-01T09:00:00+00:00", "north", "c2", "20.50", 2),
    ("2026-01-01T23:59:59+00:00", "south", "c1", "5.25", 3),
    ("2026-01-02T00:00:00+00:00", "north", "c1", "7.125", 4),
    ("2026-01-05T12:00:00+00:00", "north", "c3", None, 5),
    ("2026-02-28T08:00:00+00:00", "south", "c2", "100", 6),
    ("2026-03-02T01:30:00+02:00", "south", "c2", "0.001", 7),
    ("2026-03-01T12:00:00+00:00", "south", "c4", "3.333", 8),
]


def make_run(dataset) -> Run:
    return Run.objects.create(dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")


def add_record(dataset, run, **data) -> ChartRecord:
    return ChartRecord.objects.create(
        dataset=dataset,
        raw_record_id=next(_raw_ids),
        business_key=str(data.get("order_id", "")),
        data=data,
        run=run,
    )


def add_rows(dataset, run, rows=ROWS) -> list[ChartRecord]:
    records = []
    for order_id, (ordered_at, region, customer, amount, quantity) in enumerate(rows, start=1):
        records.append(
            add_record(
                dataset,
                run,
                order_id=order_id,
                ordered_at=ordered_at,
                order_date=ordered_at[:10] if ordered_at else None,
                region=region,
                customer=customer,
                amount=amount,
                quantity=quantity,
                paid=True,
                ssn="enc:v1:test:AAAA",
            )
        )
    return records


def make_metric(dataset, slug="orders-metric", **fields) -> MetricDefinition:
    fields.setdefault("aggregation", "count")
    fields.setdefault("time_field", "ordered_at")
    return MetricDefinition.objects.create(dataset=dataset, slug=slug, name=slug, **fields)


def facts_by_key(metric) -> dict[tuple[date, tuple], tuple[Decimal, int]]:
    return {
        (fact.period_start, tuple(sorted(fact.dimensions.items()))): (
            fact.value,
            fact.record_count,
        )
        for fact in Fact.objects.filter(metric=metric)
    }


# --- A reference implementation in Python, to check the SQL against -------------------


def truncate(day: date, grain: str) -> date:
    return {
        "day": day,
        "week": day - timedelta(days=day.weekday()),
        "month": day.replace(day=1),
        "year": day.replace(month=1, day=1),
    }[grain]


def aggregate(aggregation: str, values: list) -> Decimal | None:
    present = [value for value in values if value is not None]
    if aggregation == "count":
        return Decimal(len(values))
    if aggregation == "distinct_count":
        return Decimal(len(set(present)))
    numbers = [Decimal(str(value)) for value in present]
    if not numbers:
        return None
    if aggregation == "sum":
        return sum(numbers, Decimal(0))
    if aggregation == "avg":
        return sum(numbers, Decimal(0)) / len(numbers)
    return {"min": min, "max": max}[aggregation](numbers)


def expected_facts(aggregation: str, grain: str, value_field: str | None):
    groups = defaultdict(list)
    for ordered_at, region, customer, amount, quantity in ROWS:
        day = datetime.fromisoformat(ordered_at).astimezone(UTC).date()
        value = {"amount": amount, "quantity": quantity, "customer": customer}.get(value_field)
        groups[(truncate(day, grain), (("region", region),))].append(value)
    expected = {}
    for key, values in groups.items():
        value = aggregate(aggregation, values)
        if value is not None:  # Fact.value keeps 10 decimal places
            value = value.quantize(Decimal("1E-10"), rounding=ROUND_HALF_UP)
        expected[key] = (value, len(values))
    return expected


# --- Aggregations and grains ----------------------------------------------------------


@pytest.mark.parametrize("grain", ["day", "week", "month", "year"])
@pytest.mark.parametrize(
    ("aggregation", "value_field"),
    [
        ("count", ""),
        ("sum", "amount"),
        ("avg", "amount"),
        ("min", "amount"),
        ("max", "quantity"),
        ("distinct_count", "customer"),
    ],
)
def test_each_aggregation_at_each_grain(contract, run, aggregation, value_field, grain):
    add_rows(contract, run)
    metric = make_metric(
        contract,
        aggregation=aggregation,
        value_field=value_field,
        grain=grain,
        dimension_fields=["region"],
    )

    written = refresh_facts(dataset=contract, run=run)

    expected = expected_facts(aggregation, grain, value_field or None)
    assert facts_by_key(metric) == expected
    assert written == len(expected)
    assert set(Fact.objects.filter(metric=metric).values_list("grain", "run")) == {(grain, run.pk)}


def test_week_grain_starts_on_iso_monday(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="week")
    refresh_facts(dataset=contract, run=run)
    starts = set(Fact.objects.filter(metric=metric).values_list("period_start", flat=True))
    assert all(start.isoweekday() == 1 for start in starts)
    # 2025-12-30 and 2026-01-02 are in the ISO week starting Monday 2025-12-29.
    assert date(2025, 12, 29) in starts


def test_datetimes_fall_in_their_utc_day(contract, run):
    add_record(contract, run, order_id=1, ordered_at="2026-03-02T01:30:00+02:00")
    metric = make_metric(contract, grain="day")
    refresh_facts(dataset=contract, run=run)
    assert list(Fact.objects.filter(metric=metric).values_list("period_start", flat=True)) == [
        date(2026, 3, 1)
    ]


def test_date_time_field_and_several_dimensions(contract, run):
    add_rows(contract, run)
    metric = make_metric(
        contract,
        aggregation="sum",
        value_field="quantity",
        time_field="order_date",
        grain="month",
        dimension_fields=["region", "paid"],
    )
    refresh_facts(dataset=contract, run=run)
    fact = Fact.objects.get(
        metric=metric, period_start=date(2026, 1, 1), dimensions={"region": "north", "paid": True}
    )
    assert fact.value == 2 + 4 + 5
    assert fact.record_count == 3


def test_no_dimensions_give_one_fact_per_period(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="year")
    refresh_facts(dataset=contract, run=run)
    assert facts_by_key(metric) == {
        (date(2025, 1, 1), ()): (Decimal(1), 1),
        (date(2026, 1, 1), ()): (Decimal(7), 7),
    }


def test_min_and_max_of_a_date_decode_to_dates(contract, run):
    add_rows(contract, run)
    earliest = make_metric(
        contract, slug="first-order", aggregation="min", value_field="order_date", grain="year"
    )
    latest = make_metric(
        contract, slug="last-order", aggregation="max", value_field="ordered_at", grain="year"
    )
    refresh_facts(dataset=contract, run=run)

    first = Fact.objects.get(metric=earliest, period_start=date(2026, 1, 1))
    last = Fact.objects.get(metric=latest, period_start=date(2026, 1, 1))
    assert decode_fact_value(value=first.value, data_type=FieldType.DATE) == date(2026, 1, 1)
    assert decode_fact_value(value=last.value, data_type=FieldType.DATETIME) == datetime(
        2026, 3, 1, 23, 30, tzinfo=UTC
    )


def test_records_without_a_time_are_skipped_and_counted(contract, run):
    add_rows(contract, run)
    add_record(contract, run, order_id=99, ordered_at=None, region="north")
    add_record(contract, run, order_id=98, region="north")  # time field absent altogether
    metric = make_metric(contract, grain="year")

    refresh_facts(dataset=contract, run=run)

    assert sum(Fact.objects.filter(metric=metric).values_list("record_count", flat=True)) == 8
    run.refresh_from_db()
    assert run.detail["facts"][metric.slug]["skipped_null_time"] == 2


def test_restricted_values_never_reach_facts(contract, run):
    add_rows(contract, run)
    make_metric(contract, dimension_fields=["region", "customer"])
    refresh_facts(dataset=contract, run=run)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM navigate.fact WHERE dimensions::text LIKE '%%enc:%%'")
        assert cursor.fetchone()[0] == 0


def test_an_encrypted_field_is_counted_distinct_by_its_keyed_tokens(contract, run):
    # Every encryption of one value differs; its token does not.
    keyring, tokens = Keyring.from_settings(), TokenKeyring.from_settings()
    context = field_context(contract.pk, "ssn")
    for order_id, ssn in enumerate(["111-22-3333", "111-22-3333", "222-33-4444"], start=1):
        ChartRecord.objects.create(
            dataset=contract,
            raw_record_id=next(_raw_ids),
            business_key=str(order_id),
            data={
                "order_id": order_id,
                "ordered_at": "2026-03-01T10:00:00+00:00",
                "ssn": keyring.encrypt(ssn, context=context),
            },
            tokens={"ssn": tokens.token(ssn)},
            run=run,
        )
    metric = make_metric(contract, aggregation="distinct_count", value_field="ssn", grain="day")
    refresh_facts(dataset=contract, run=run)
    [fact] = Fact.objects.filter(metric=metric)
    assert (fact.value, fact.record_count) == (2, 3)


# --- Re-runs and touched periods ------------------------------------------------------


def test_rerunning_gives_identical_facts(contract, run):
    add_rows(contract, run)
    metric = make_metric(
        contract,
        aggregation="avg",
        value_field="amount",
        grain="month",
        dimension_fields=["region"],
    )
    refresh_facts(dataset=contract, run=run)
    before = list(
        Fact.objects.filter(metric=metric)
        .values_list("id", "period_start", "dimension_key", "value", "record_count")
        .order_by("id")
    )

    again = make_run(contract)
    refresh_facts(dataset=contract, run=again)
    refresh_facts(dataset=contract, run=again, periods=touched_periods(dataset=contract, run=run))

    after = list(
        Fact.objects.filter(metric=metric)
        .values_list("id", "period_start", "dimension_key", "value", "record_count")
        .order_by("id")
    )
    assert after == before
    assert set(Fact.objects.filter(metric=metric).values_list("run", flat=True)) == {again.pk}


def test_touched_periods_follow_the_run_and_the_metric_grain(contract, run):
    add_rows(contract, run)
    daily = make_metric(contract, slug="daily", grain="day")
    yearly = make_metric(contract, slug="yearly", grain="year", time_field="order_date")
    later = make_run(contract)
    add_record(
        contract,
        later,
        order_id=50,
        ordered_at="2026-04-07T10:00:00+00:00",
        order_date="2026-04-07",
    )

    touched = touched_periods(dataset=contract, run=later)

    assert touched == {daily.pk: {date(2026, 4, 7)}, yearly.pk: {date(2026, 1, 1)}}


def test_only_touched_periods_are_recomputed(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region"])
    refresh_facts(dataset=contract, run=run)
    untouched = {
        fact.pk: (fact.run_id, fact.computed_at, fact.value)
        for fact in Fact.objects.filter(metric=metric).exclude(period_start=date(2026, 3, 1))
    }

    chart_run = make_run(contract)
    add_record(
        contract, chart_run, order_id=60, ordered_at="2026-03-15T10:00:00+00:00", region="south"
    )
    navigate_run = make_run(contract)
    written = refresh_facts(
        dataset=contract, run=navigate_run, periods=touched_periods(dataset=contract, run=chart_run)
    )

    assert written == 1
    march = Fact.objects.get(metric=metric, period_start=date(2026, 3, 1))
    assert (march.value, march.record_count, march.run_id) == (Decimal(3), 3, navigate_run.pk)
    assert {
        fact.pk: (fact.run_id, fact.computed_at, fact.value)
        for fact in Fact.objects.filter(metric=metric).exclude(period_start=date(2026, 3, 1))
    } == untouched
    navigate_run.refresh_from_db()
    assert navigate_run.detail["facts"][metric.slug]["periods"] == 1


def test_a_superseded_record_loses_its_contribution(contract, run):
    first = add_record(
        contract,
        run,
        order_id=1,
        ordered_at="2026-02-01T10:00:00+00:00",
        region="north",
        amount="10",
    )
    other = add_record(
        contract,
        run,
        order_id=2,
        ordered_at="2026-02-03T10:00:00+00:00",
        region="north",
        amount="1",
    )
    metric = make_metric(
        contract,
        aggregation="sum",
        value_field="amount",
        grain="month",
        dimension_fields=["region"],
    )
    refresh_facts(dataset=contract, run=run)

    # A later chart run: order 1 moved to March and to the south region.
    chart_run = make_run(contract)
    second = add_record(
        contract,
        chart_run,
        order_id=1,
        ordered_at="2026-03-01T10:00:00+00:00",
        region="south",
        amount="12",
    )
    ChartRecord.objects.filter(pk=first.pk).update(is_current=False, superseded_by=second)
    periods = touched_periods(dataset=contract, run=chart_run)
    assert periods == {metric.pk: {date(2026, 2, 1), date(2026, 3, 1)}}
    refresh_facts(dataset=contract, run=make_run(contract), periods=periods)

    assert facts_by_key(metric) == {
        (date(2026, 2, 1), (("region", "north"),)): (Decimal(1), 1),
        (date(2026, 3, 1), (("region", "south"),)): (Decimal(12), 1),
    }

    # The last record of a group superseded: the group's fact disappears, also when
    # every period is recomputed.
    moved = add_record(
        contract,
        make_run(contract),
        order_id=2,
        ordered_at="2026-03-02T10:00:00+00:00",
        region="south",
        amount="2",
    )
    ChartRecord.objects.filter(pk=other.pk).update(is_current=False, superseded_by=moved)
    refresh_facts(dataset=contract, run=make_run(contract))
    assert facts_by_key(metric) == {
        (date(2026, 3, 1), (("region", "south"),)): (Decimal(14), 2),
    }


def test_a_run_that_wrote_nothing_touches_nothing(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract)
    empty = make_run(contract)
    periods = touched_periods(dataset=contract, run=empty)
    assert periods == {metric.pk: set()}
    assert refresh_facts(dataset=contract, run=empty, periods=periods) == 0
    assert not Fact.objects.filter(metric=metric).exists()


def test_facts_land_in_their_year_partition(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="day")
    refresh_facts(dataset=contract, run=run)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(year FROM period_start)::int, tableoid::regclass::text "
            "FROM navigate.fact WHERE metric_id = %s",
            [metric.pk],
        )
        placed = set(cursor.fetchall())
    assert placed == {(2025, "navigate.fact_2025"), (2026, "navigate.fact_2026")}


def test_facts_for_metric_in_period_order(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region"])
    refresh_facts(dataset=contract, run=run)

    periods = [fact.period_start for fact in facts_for_metric(metric=metric)]
    assert periods == sorted(periods)
    assert periods[0] == date(2025, 12, 1)
    bounded = facts_for_metric(metric=metric, start=date(2026, 1, 1), end=date(2026, 2, 1))
    assert [(f.period_start, f.dimensions["region"]) for f in bounded] == [
        (date(2026, 1, 1), "north"),
        (date(2026, 1, 1), "south"),
        (date(2026, 2, 1), "south"),
    ]


# --- Definitions refused --------------------------------------------------------------


def messages(error: ValidationError) -> dict[str, list[str]]:
    return error.message_dict


def test_a_restricted_dimension_is_refused(contract):
    metric = MetricDefinition(
        dataset=contract,
        slug="by-ssn",
        name="By SSN",
        aggregation="count",
        time_field="ordered_at",
        dimension_fields=["region", "ssn"],
    )
    with pytest.raises(ValidationError) as caught:
        metric.full_clean()
    assert messages(caught.value) == {
        "dimension_fields": ["'ssn' is classified restricted; facts never carry restricted values."]
    }


def test_a_sum_of_text_is_refused(contract):
    metric = make_metric(contract, aggregation="sum", value_field="region")
    with pytest.raises(ValidationError) as caught:
        validate_metric_definition(metric=metric)
    assert messages(caught.value) == {
        "value_field": ["'region' is string; a sum needs one of: decimal, integer."]
    }


@pytest.mark.parametrize(
    ("definition", "key", "message"),
    [
        (
            {"aggregation": "avg", "value_field": "price"},
            "value_field",
            "'price' is not a field of the orders contract.",
        ),
        (
            {"time_field": "shipped_at"},
            "time_field",
            "'shipped_at' is not a field of the orders contract.",
        ),
        (
            {"dimension_fields": ["country"]},
            "dimension_fields",
            "'country' is not a field of the orders contract.",
        ),
        (
            {"dimension_fields": ["region", "region"]},
            "dimension_fields",
            "'region' is listed twice.",
        ),
        ({"aggregation": "sum"}, "value_field", "A sum needs a value field."),
        (
            {"value_field": "amount"},
            "value_field",
            "A count of records takes no value field; use a distinct count to count the "
            "values of a field.",
        ),
        (
            {"time_field": "quantity"},
            "time_field",
            "'quantity' is integer; the time field must be a date or a date and time.",
        ),
        (
            {"aggregation": "max", "value_field": "paid"},
            "value_field",
            "'paid' is boolean; a maximum needs one of: date, date and time, decimal, integer.",
        ),
        (
            {"aggregation": "max", "value_field": "ssn"},
            "value_field",
            "'ssn' is classified restricted; its values are encrypted, so a maximum cannot use "
            "them (a distinct count can: it counts their keyed tokens).",
        ),
    ],
)
def test_definitions_that_cannot_be_computed_are_refused(contract, definition, key, message):
    metric = MetricDefinition(
        dataset=contract, slug="m", name="m", aggregation="count", time_field="ordered_at"
    )
    for name, value in definition.items():
        setattr(metric, name, value)
    with pytest.raises(ValidationError) as caught:
        validate_metric_definition(metric=metric)
    assert messages(caught.value) == {key: [message]}


def test_every_problem_is_reported_at_once(contract):
    metric = MetricDefinition(
        dataset=contract,
        slug="m",
        name="m",
        aggregation="sum",
        value_field="customer",
        time_field="region",
        dimension_fields=["ssn"],
    )
    with pytest.raises(ValidationError) as caught:
        validate_metric_definition(metric=metric)
    assert set(messages(caught.value)) == {"value_field", "time_field", "dimension_fields"}


def test_valid_definitions_pass(contract):
    for definition in [
        {"aggregation": "count"},
        {"aggregation": "min", "value_field": "order_date", "time_field": "order_date"},
        {
            "aggregation": "distinct_count",
            "value_field": "customer",
            "dimension_fields": ["region", "paid"],
        },
    ]:
        metric = MetricDefinition(
            dataset=contract, slug="ok", name="ok", aggregation="count", time_field="ordered_at"
        )
        for name, value in definition.items():
            setattr(metric, name, value)
        metric.full_clean()


def test_a_dimension_reclassified_restricted_stops_its_metric(contract, run):
    add_rows(contract, run)
    refused = make_metric(contract, slug="by-region", dimension_fields=["region"])
    kept = make_metric(contract, slug="all-orders")
    DatasetField.objects.filter(dataset=contract, name="region").update(
        classification=ClassificationLevel.objects.get(requires_encryption=True)
    )

    refresh_facts(dataset=contract, run=run)

    assert not Fact.objects.filter(metric=refused).exists()
    assert Fact.objects.filter(metric=kept).exists()
    run.refresh_from_db()
    assert run.detail["facts"]["by-region"] == {
        "refused": ["'region' is classified restricted; facts never carry restricted values."]
    }
    with pytest.raises(ValidationError):
        refresh_metric_facts(metric=refused, run=run)


def test_a_broken_definition_is_reported_even_when_nothing_is_touched(contract, run):
    metric = make_metric(contract, slug="by-time")
    MetricDefinition.objects.filter(pk=metric.pk).update(time_field="quantity")
    refresh_facts(dataset=contract, run=run, periods=touched_periods(dataset=contract, run=run))
    run.refresh_from_db()
    assert run.detail["facts"] == {
        "by-time": {
            "refused": ["'quantity' is integer; the time field must be a date or a date and time."]
        }
    }


# --- Lineage --------------------------------------------------------------------------


def test_lineage_is_recorded_once_per_rerun(contract, run):
    add_rows(contract, run)
    metric = make_metric(
        contract, aggregation="sum", value_field="amount", dimension_fields=["region", "paid"]
    )
    refresh_facts(dataset=contract, run=run)
    latest = make_run(contract)
    refresh_facts(dataset=contract, run=latest)
    record_lineage(metric=metric, run=latest)

    edges = LineageEdge.objects.filter(dataset=contract, target_layer=Layer.NAVIGATE)
    assert sorted(edges.values_list("source_field", flat=True)) == [
        "",
        "amount",
        "ordered_at",
        "paid",
        "region",
    ]
    assert set(edges.values_list("source_field", "transform")) == {
        ("", Transform.AGGREGATED),
        ("amount", Transform.AGGREGATED),
        ("ordered_at", Transform.AGGREGATED),
        ("paid", Transform.GROUPED),
        ("region", Transform.GROUPED),
    }
    assert set(edges.values_list("source_layer", "target_name", "run")) == {
        (Layer.CHART, metric.slug, latest.pk)
    }


def test_a_field_used_twice_is_one_edge(contract):
    metric = make_metric(contract, aggregation="max", value_field="ordered_at")
    edges = record_lineage(metric=metric, run=make_run(contract))
    assert [edge.source_field for edge in edges] == ["", "ordered_at"]


# --- The dimension key ----------------------------------------------------------------


def _stored_keys(metric) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT dimensions::text, dimension_key, md5(dimensions::text) FROM navigate.fact"
            " WHERE metric_id = %s",
            [metric.pk],
        )
        rows = cursor.fetchall()
    assert all(key != digest for _text, key, digest in rows)  # no unkeyed digest
    return {text: key for text, key, _digest in rows}


def test_a_facts_dimension_key_is_a_keyed_hmac_of_its_dimensions(contract, run, settings):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region", "customer"])
    refresh_facts(dataset=contract, run=run)
    keys = _stored_keys(metric)
    assert len(keys) > 1
    # The HMAC-SHA256 under a key derived from the hash key for this purpose alone.
    derived = hmac.new(
        TokenKeyring.from_settings().keys[TokenKeyring.from_settings().current_id],
        b"atlas purpose:navigate.fact.dimension_key",
        hashlib.sha256,
    ).digest()
    for text, key in keys.items():
        assert key == hmac.new(derived, text.encode(), hashlib.sha256).hexdigest()
    # Another hash key makes other keys, so they cannot be made without it.
    settings.ATLAS_HASH_KEY = "other:" + base64.b64encode(b"k" * 32).decode()
    refresh_facts(dataset=contract, run=make_run(contract))
    assert set(_stored_keys(metric).values()).isdisjoint(keys.values())


def test_after_a_hash_key_rotation_rekey_facts_remakes_every_key(contract, run, settings):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region"])
    refresh_facts(dataset=contract, run=run)
    before = facts_by_key(metric)
    old_keys = set(_stored_keys(metric).values())
    new_key = "new:" + base64.b64encode(b"n" * 32).decode()
    settings.ATLAS_HASH_KEY = f"{new_key},{settings.ATLAS_HASH_KEY}"

    assert rekey_facts() == Fact.objects.filter(metric=metric).count() == len(before)
    out = io.StringIO()
    call_command("rekey_facts", stdout=out)  # every key is current now
    assert "Re-made 0 facts' dimension keys under hash key 'new'" in out.getvalue()
    rekeyed = _stored_keys(metric)
    assert set(rekeyed.values()).isdisjoint(old_keys)
    # A refresh after the rotation upserts onto the re-made keys: the same facts, no more.
    refresh_facts(dataset=contract, run=make_run(contract))
    assert _stored_keys(metric) == rekeyed
    assert facts_by_key(metric) == before


def test_a_refresh_before_the_rekey_replaces_its_periods_old_keyed_facts(contract, run, settings):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region"])
    refresh_facts(dataset=contract, run=run)
    before = facts_by_key(metric)
    settings.ATLAS_HASH_KEY = "new:" + base64.b64encode(b"n" * 32).decode()
    refresh_facts(dataset=contract, run=make_run(contract), periods=None)
    assert facts_by_key(metric) == before
    assert Fact.objects.filter(metric=metric).count() == len(before)


def test_the_migration_turns_unkeyed_digests_into_keyed_ones(contract, run):
    add_rows(contract, run)
    metric = make_metric(contract, grain="month", dimension_fields=["region"])
    refresh_facts(dataset=contract, run=run)
    made = _stored_keys(metric)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE navigate.fact SET dimension_key = md5(dimensions::text)")
    migration = importlib.import_module("navigate.migrations.0002_dimension_keys_keyed")
    with connection.schema_editor() as editor:
        migration.keyed_dimension_keys(django_apps, editor)
    assert _stored_keys(metric) == made


def test_an_encrypted_time_field_is_refused(contract):
    DatasetField.objects.create(
        dataset=contract,
        name="born_on",
        position=20,
        data_type=FieldType.DATE,
        classification=ClassificationLevel.objects.get(name="restricted"),
    )
    metric = MetricDefinition(
        dataset=contract, slug="births", name="Births", aggregation="count", time_field="born_on"
    )
    with pytest.raises(ValidationError) as refused:
        validate_metric_definition(metric=metric)
    assert messages(refused.value) == {
        "time_field": [
            "'born_on' is classified restricted; its values are encrypted and cannot place "
            "records in periods."
        ]
    }
