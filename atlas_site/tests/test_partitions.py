"""Partitioned tables: DEFAULT partitions, partitions around today, upkeep, pruning."""

from datetime import date, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from atlas_site.partitions import (
    AUDIT_LOG,
    FACTS,
    PARTITIONED_TABLES,
    RAW_RECORDS,
    ensure_table_partitions,
    existing_partitions,
)
from explore.models import LandingBatch, RawRecord
from governance.archive.services.upkeep import ensure_partitions


def test_period_arithmetic():
    assert RAW_RECORDS.period_start(date(2026, 11, 26)) == date(2026, 11, 1)
    assert RAW_RECORDS.shift(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert RAW_RECORDS.shift(date(2026, 1, 1), -1) == date(2025, 12, 1)
    assert AUDIT_LOG.period_start(date(2026, 11, 26)) == date(2026, 10, 1)
    assert AUDIT_LOG.shift(date(2026, 10, 1), 1) == date(2027, 1, 1)
    assert FACTS.period_start(date(2026, 11, 26)) == date(2026, 1, 1)
    assert RAW_RECORDS.partition_name(date(2026, 2, 1)) == "raw_record_2026_02"
    assert AUDIT_LOG.partition_name(date(2026, 10, 1)) == "audit_log_2026_q4"
    assert FACTS.partition_name(date(2027, 1, 1)) == "fact_2027"


@pytest.mark.django_db
@pytest.mark.parametrize("table", PARTITIONED_TABLES, ids=lambda t: t.name)
def test_each_partitioned_table_has_default_and_current_partitions(table):
    partitions = existing_partitions(table)
    assert partitions[table.default_partition] == "DEFAULT"
    today = timezone.now().date()
    current = table.partition_name(table.period_start(today))
    following = table.partition_name(table.shift(table.period_start(today), 1))
    assert current in partitions
    assert following in partitions
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [table.schema, table.name],
        )
        assert cursor.fetchone()[0] == "p"


@pytest.mark.django_db
def test_ensure_partitions_creates_ahead_and_is_idempotent():
    far_future = date(2031, 6, 15)
    first = {report.table: report for report in ensure_partitions(months=2, today=far_future)}
    assert first["explore.raw_record"].created == [
        "raw_record_2031_05",
        "raw_record_2031_06",
        "raw_record_2031_07",
        "raw_record_2031_08",
    ]
    assert "fact_2031" in first["navigate.fact"].created
    assert "audit_log_2031_q2" in first["compliance.audit_log"].created
    again = ensure_partitions(months=2, today=far_future)
    assert all(report.created == [] for report in again)


@pytest.mark.django_db
def test_rows_in_default_block_their_partition_and_are_reported(dataset):
    batch = LandingBatch.objects.create(
        key="6f1c1e8e-0000-4000-8000-000000000001",
        dataset=dataset,
        sha256="0" * 64,
        format="csv",
        received_at=datetime(2040, 3, 5, tzinfo=timezone.UTC),
    )
    RawRecord.objects.create(
        received_at=batch.received_at, batch=batch, dataset=dataset, line_number=1, raw_text="x"
    )
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*) FROM "explore"."raw_record_default"')
        assert cursor.fetchone()[0] == 1
        report = ensure_table_partitions(
            RAW_RECORDS, cursor, ahead=1, today=date(2040, 3, 10), behind=0
        )
    assert report.blocked == {"raw_record_2040_03": 1}
    assert report.created == ["raw_record_2040_04"]
    assert report.rows_in_default == 1


@pytest.mark.django_db
def test_ensure_partitions_command_reports(dataset):
    out = StringIO()
    call_command("ensure_partitions", "--months", "3", stdout=out)
    text = out.getvalue()
    assert "explore.raw_record" in text
    assert "navigate.fact" in text
    assert "compliance.audit_log" in text
    assert "DEFAULT partition is empty" in text


@pytest.mark.django_db
def test_command_refuses_nonsense_horizon():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--months must be between 0 and 120"):
        call_command("ensure_partitions", "--months", "-1")


@pytest.mark.django_db
def test_a_query_on_one_month_reads_one_partition(dataset):
    month = timezone.now().date().replace(day=1)
    start = datetime(month.year, month.month, 1, tzinfo=timezone.UTC)
    end = datetime(
        RAW_RECORDS.shift(month, 1).year, RAW_RECORDS.shift(month, 1).month, 1, tzinfo=timezone.UTC
    )
    queryset = RawRecord.objects.filter(received_at__gte=start, received_at__lt=end)
    plan = queryset.explain()
    scanned = {name for name in existing_partitions(RAW_RECORDS) if name in plan}
    assert scanned == {RAW_RECORDS.partition_name(month)}, plan
