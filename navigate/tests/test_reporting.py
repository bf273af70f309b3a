"""The reporting schema: typed views read as the reporting role, kept in step with
contracts, levels, reader groups and metrics; the role reads those views and nothing else.

Roles are the server's, but CREATE ROLE is transactional: each test's roles go with its
rolled-back transaction.
"""

import itertools
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction

from atlas_site.schemas import ALL_SCHEMAS, REPORTING
from chart.models import LEGACY_MASKED, ChartRecord
from governance.compliance.db_roles import setup_db_roles
from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import DatasetField, FieldType
from navigate.models import MetricDefinition
from navigate.reporting import build_reporting_views
from navigate.services import refresh_facts

pytestmark = pytest.mark.django_db

_raw_ids = itertools.count(1)


def add_record(dataset, run, tokens=None, **data) -> ChartRecord:
    return ChartRecord.objects.create(
        dataset=dataset,
        raw_record_id=next(_raw_ids),
        business_key=str(data.get("order_id", "")),
        data=data,
        tokens=tokens or {},
        run=run,
    )


@pytest.fixture
def orders(contract, run):
    """The navigate contract (public and unclassified fields, region internal, customer
    confidential, ssn restricted) with three records, one superseded, one legacy."""
    public = ClassificationLevel.objects.get(name="public")
    DatasetField.objects.filter(dataset=contract, name="order_id").update(classification=public)
    rows = [
        (1, "2026-01-01T10:00:00+00:00", "10.50", "north", True, "tok-a"),
        (2, "2026-01-01T12:00:00+00:00", "4.25", "south", False, "tok-b"),
        (3, "2026-01-02T09:30:00+00:00", "100", "north", True, "tok-a"),
    ]
    for order_id, at, amount, region, paid, token in rows:
        add_record(
            contract,
            run,
            tokens={"ssn": token},
            order_id=order_id,
            ordered_at=at,
            order_date=at[:10],
            amount=amount,
            quantity=order_id * 2,
            region=region,
            customer=f"customer-{order_id}",
            paid=paid,
            ssn="enc:v1:test:AAAA",
        )
    old = add_record(contract, run, order_id=9, ordered_at=rows[0][1], amount="1")
    ChartRecord.objects.filter(pk=old.pk).update(is_current=False)
    legacy = add_record(contract, run, order_id="**34", customer="**34", amount="1")
    ChartRecord.objects.filter(pk=legacy.pk).update(protection_version=LEGACY_MASKED)
    return contract


@pytest.fixture
def revenue(orders, run):
    metric = MetricDefinition.objects.create(
        slug="daily-revenue",
        name="Daily revenue",
        dataset=orders,
        aggregation="sum",
        value_field="amount",
        time_field="ordered_at",
        grain="day",
        dimension_fields=["paid", "region"],
    )
    refresh_facts(dataset=orders, run=run)
    return metric


@pytest.fixture
def reporting_role(db):
    suffix = uuid.uuid4().hex[:8]
    owner, app, reporting = (f"atlas_{kind}_{suffix}" for kind in ("owner", "app", "reporting"))
    with connection.cursor() as cursor:
        # Ownership moves by ALTER TABLE, which deferred foreign key checks would block.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    setup_db_roles(owner=owner, app=app, reporting=reporting)
    return reporting


@contextmanager
def as_role(role: str):
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{role}"')
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE")


def column_types(view: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [REPORTING, view],
        )
        return dict(cursor.fetchall())


def views() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = %s", [REPORTING]
        )
        return {name for (name,) in cursor.fetchall()}


def test_the_views_are_typed_and_show_only_what_no_clearance_may_see(revenue, reporting_role):
    built = build_reporting_views()
    assert set(built.views) == {"dataset_orders", "metric_daily_revenue"}
    # region (internal) and customer (confidential) are masked levels: left out; ssn
    # (restricted, encrypted) as its keyed token; public and unclassified fields typed.
    assert column_types("dataset_orders") == {
        "chart_record_id": "bigint",
        "promoted_at": "timestamp with time zone",
        "order_id": "bigint",
        "ordered_at": "timestamp with time zone",
        "order_date": "date",
        "amount": "numeric",
        "quantity": "bigint",
        "paid": "boolean",
        "ssn_token": "text",
    }
    # The region dimension (internal) is left out; the rows stay one per fact.
    assert column_types("metric_daily_revenue") == {
        "period_start": "date",
        "grain": "text",
        "paid": "boolean",
        "value": "numeric",
        "record_count": "bigint",
        "computed_at": "timestamp with time zone",
    }
    with as_role(reporting_role) as cursor:
        cursor.execute(
            "SELECT order_id, ordered_at, order_date, amount, quantity, paid, ssn_token "
            "FROM reporting.dataset_orders ORDER BY order_id"
        )
        records = cursor.fetchall()
        cursor.execute(
            "SELECT period_start, paid, sum(value), sum(record_count) "
            "FROM reporting.metric_daily_revenue GROUP BY 1, 2 ORDER BY 1, 2"
        )
        facts = cursor.fetchall()
        cursor.execute(
            "SELECT obj_description('reporting.dataset_orders'::regclass, 'pg_class'), "
            "obj_description('reporting.metric_daily_revenue'::regclass, 'pg_class')"
        )
        comments = cursor.fetchone()
    # The superseded record and the legacy (masked) one are not in the view.
    assert records == [
        (
            1,
            datetime(2026, 1, 1, 10, tzinfo=UTC),
            date(2026, 1, 1),
            Decimal("10.50"),
            2,
            True,
            "tok-a",
        ),
        (
            2,
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            date(2026, 1, 1),
            Decimal("4.25"),
            4,
            False,
            "tok-b",
        ),
        (
            3,
            datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
            date(2026, 1, 2),
            Decimal("100"),
            6,
            True,
            "tok-a",
        ),
    ]
    assert facts == [
        (date(2026, 1, 1), False, Decimal("4.25"), 1),
        (date(2026, 1, 1), True, Decimal("10.50"), 1),
        (date(2026, 1, 2), True, Decimal("100"), 1),
    ]
    assert "region (internal), customer (confidential)" in comments[0]
    assert "ssn (restricted) as ssn_token" in comments[0]
    assert "region (internal)" in comments[1]
    assert not any("north" in text or "customer-" in text for text in comments)


def test_a_value_of_another_type_reads_null_rather_than_failing(orders, run):
    add_record(orders, run, order_id="not a number", amount="abc", paid="yes", order_date="x")
    build_reporting_views()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT order_id, amount, paid, order_date FROM reporting.dataset_orders "
            "WHERE order_id IS NULL"
        )
        assert cursor.fetchall() == [(None, None, None, None)]


def test_the_views_follow_contract_level_group_and_metric_changes(
    revenue, reporting_role, django_capture_on_commit_callbacks
):
    build_reporting_views()
    public = ClassificationLevel.objects.get(name="public")
    with django_capture_on_commit_callbacks(execute=True):
        DatasetField.objects.create(
            dataset=revenue.dataset,
            name="channel",
            position=20,
            data_type=FieldType.STRING,
            classification=public,
        )
        DatasetField.objects.get(dataset=revenue.dataset, name="quantity").delete()
    columns = column_types("dataset_orders")
    assert columns["channel"] == "text" and "quantity" not in columns

    # A level change: region's level stops masking, so region appears, in both views.
    internal = ClassificationLevel.objects.get(name="internal")
    with django_capture_on_commit_callbacks(execute=True):
        internal.masking = "none"
        internal.save()
    assert column_types("dataset_orders")["region"] == "text"
    assert column_types("metric_daily_revenue")["region"] == "text"

    # A field raised to a masked level goes; a metric's new dimension comes.
    confidential = ClassificationLevel.objects.get(name="confidential")
    with django_capture_on_commit_callbacks(execute=True):
        channel = DatasetField.objects.get(dataset=revenue.dataset, name="channel")
        channel.classification = confidential
        channel.save()
        revenue.dimension_fields = ["paid", "region", "order_date"]
        revenue.save()
    assert "channel" not in column_types("dataset_orders")
    assert column_types("metric_daily_revenue")["order_date"] == "date"

    # Rebuilt views stay readable by the reporting role.
    with as_role(reporting_role) as cursor:
        cursor.execute("SELECT count(*) FROM reporting.dataset_orders")
        assert cursor.fetchone() == (3,)

    # Limited to a group: no view for the dataset nor its metrics.
    with django_capture_on_commit_callbacks(execute=True):
        revenue.dataset.reader_groups.add(Group.objects.create(name="finance"))
    assert views() == set()
    with django_capture_on_commit_callbacks(execute=True):
        revenue.dataset.reader_groups.clear()
    assert views() == {"dataset_orders", "metric_daily_revenue"}
    with django_capture_on_commit_callbacks(execute=True):
        revenue.facts.all().delete()
        revenue.delete()
    assert views() == {"dataset_orders"}


def test_the_reporting_role_reads_the_views_and_nothing_else(revenue, reporting_role):
    build_reporting_views()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND (n.nspname = ANY(%s) "
            "OR n.nspname IN ('public', %s)) AND (has_table_privilege(%s, c.oid, "
            "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') "
            "OR (c.relkind = 'S' AND has_sequence_privilege(%s, c.oid, 'USAGE, SELECT, UPDATE')))",
            [list(ALL_SCHEMAS), REPORTING, reporting_role, reporting_role],
        )
        readable = {name for (name,) in cursor.fetchall()}
        cursor.execute(
            "SELECT has_table_privilege(%s, 'reporting.dataset_orders', 'INSERT, UPDATE, DELETE')",
            [reporting_role],
        )
        writes_views = cursor.fetchone()[0]
    assert readable == {"reporting.dataset_orders", "reporting.metric_daily_revenue"}
    assert not writes_views

    refusals = [
        "SELECT * FROM chart.chart_record",
        "SELECT * FROM explore.raw_record",
        "SELECT * FROM navigate.fact",
        "SELECT * FROM compliance.audit_log",
        "SELECT * FROM pipeline.dataset",
        "SELECT * FROM public.auth_user",
        "DELETE FROM reporting.dataset_orders",
        # (chart_record_id is chart_record.id: the view would pass the update on)
        "UPDATE reporting.dataset_orders SET chart_record_id = 0",
        "CREATE TABLE reporting.intruder (id int)",
        "CREATE TABLE public.intruder (id int)",
        "CREATE VIEW reporting.mine AS SELECT 1",
        "DROP VIEW reporting.dataset_orders",
    ]
    with as_role(reporting_role) as cursor:
        cursor.execute("SELECT count(*) FROM reporting.metric_daily_revenue")
        assert cursor.fetchone() == (3,)
        for statement in refusals:
            refused = pytest.raises(ProgrammingError, match=r"permission denied|must be owner")
            with refused, transaction.atomic():
                cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolconfig FROM pg_roles WHERE rolname = %s", [reporting_role])
        assert cursor.fetchone()[0] == ["default_transaction_read_only=on"]


def test_the_command_rebuilds_and_says_what_was_left_out(revenue, capsys):
    revenue.dataset.reader_groups.add(Group.objects.create(name="finance"))
    call_command("build_reporting_views")
    out = capsys.readouterr().out
    assert "0 reporting views built" in out
    assert "Left out, limited to reader groups: orders." in out


def test_view_names_are_short_and_unique(contract, run):
    from governance.pipeline.models import Dataset

    long_slug = "a" * 80
    Dataset.objects.create(slug=long_slug, name="Long")
    Dataset.objects.create(slug="ORDERS", name="Upper")  # orders and ORDERS: both views
    built = build_reporting_views()
    assert all(len(name) <= 63 for name in built.views)
    assert len(set(built.views)) == 3
    assert "dataset_orders" in built.views


def test_a_unique_masked_field_shows_its_token_and_time_values_keep_their_type(orders, run):
    customer = DatasetField.objects.get(dataset=orders, name="customer")
    customer.unique = True  # chart keeps a token of every unique field's values
    customer.save()
    ChartRecord.objects.filter(dataset=orders).update(tokens={"ssn": "t", "customer": "c-token"})
    first = MetricDefinition.objects.create(
        slug="first-order",
        name="First order",
        dataset=orders,
        aggregation="min",
        value_field="order_date",
        time_field="ordered_at",
        grain="month",
        dimension_fields=["order_date"],
    )
    refresh_facts(dataset=orders, run=run)
    build_reporting_views()
    assert column_types("dataset_orders")["customer_token"] == "text"
    assert column_types("metric_first_order")["value"] == "date"
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT customer_token FROM reporting.dataset_orders")
        assert cursor.fetchall() == [("c-token",)]
        cursor.execute(f"SELECT min(value) FROM reporting.metric_{first.slug.replace('-', '_')}")
        assert cursor.fetchone() == (date(2026, 1, 1),)


def test_migrate_rebuilds_the_views(orders):
    from django.core.management.sql import emit_post_migrate_signal

    assert views() == set()  # saved in this test's transaction: no commit, no rebuild yet
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert views() == {"dataset_orders"}
