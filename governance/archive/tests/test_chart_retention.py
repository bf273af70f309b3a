"""Retention of chart records: only months whose records are all superseded are retired
(archived, then dropped), the facts stay as they were, and a restore gives them back."""

from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection

from atlas_site.partitions import CHART_RECORDS, existing_partitions
from chart.models import ChartRecord
from chart.services import promote_to_chart
from dashboards.selectors import storage
from governance.archive import selectors
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.archive.services.retention import apply_retention
from governance.archive.tests.conftest import OLD_MONTH, at, make_partition
from governance.pipeline.models import Run, RunKind, RunStatus
from governance.pipeline.services import create_run
from navigate.models import Fact, MetricDefinition
from navigate.services import promote_to_navigate, refresh_facts

pytestmark = pytest.mark.django_db

FEB = date(2024, 2, 1)


def customer(id_: int, amount: str, signup: str = "2026-01-02") -> dict:
    return {"id": str(id_), "email": f"c{id_}@example.com", "amount": amount, "signup": signup}


def promoted_in(month: date, dataset, land, rows: list[dict]) -> Run:
    """Promote `rows`, then date their chart records in `month` (the rows move there)."""
    land(dataset, rows)
    run = promote_to_chart(dataset=dataset, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED, run.error
    ChartRecord.objects.filter(run=run).update(created_at=at(month))
    return run


def chart_rows(month: date) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM {CHART_RECORDS.sql_name} WHERE created_at >= %s AND created_at < %s "
            "ORDER BY id",
            [at(month, 0), at(CHART_RECORDS.shift(month, 1), 0)],
        )
        return cursor.fetchall()


def facts() -> set[tuple]:
    return set(Fact.objects.values_list("metric_id", "period_start", "value", "record_count"))


def test_only_months_of_superseded_records_are_archived_and_facts_stay(customers, land):
    make_partition(CHART_RECORDS, OLD_MONTH)
    make_partition(CHART_RECORDS, FEB)
    # January: customers 1 and 2. February: 1 again (current from then on) and 2 again.
    # Now: 2 once more. January's records are all superseded, February holds a current one.
    promoted_in(OLD_MONTH, customers, land, [customer(1, "10"), customer(2, "20")])
    promoted_in(FEB, customers, land, [customer(1, "11"), customer(2, "21")])
    land(customers, [customer(2, "22", signup="2026-02-03")])
    assert promote_to_chart(dataset=customers, triggered_by="test").status == RunStatus.SUCCEEDED
    MetricDefinition.objects.create(
        dataset=customers,
        slug="amounts",
        name="amounts",
        aggregation="sum",
        value_field="amount",
        time_field="signup",
        grain="month",
    )
    navigate = promote_to_navigate(dataset=customers, triggered_by="test")
    assert navigate.status == RunStatus.SUCCEEDED, navigate.error
    facts_before = facts()
    assert {(value, count) for _m, _p, value, count in facts_before} == {(11, 1), (22, 1)}
    january = chart_rows(OLD_MONTH)
    assert len(january) == 2
    RetentionPolicy.objects.create(layer="chart", keep_months=12)

    plan = {p.partition_name: p for p in selectors.retention_plan()}
    assert plan["chart_record_2024_01"].status == selectors.DUE
    assert plan["chart_record_2024_02"].status == selectors.IN_USE
    assert "current for their business key" in plan["chart_record_2024_02"].reason
    assert "chart_record_2024_02" not in {p.partition_name for p in selectors.next_to_archive()}

    run = apply_retention(run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test"))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [item["partition"] for item in run.detail["retired"]] == ["chart_record_2024_01"]
    [kept] = [k for k in run.detail["kept"] if k["partition"] == "chart_record_2024_02"]
    assert kept["status"] == selectors.IN_USE
    assert "chart_record_2024_01" not in existing_partitions(CHART_RECORDS)
    assert chart_rows(OLD_MONTH) == []
    manifest = ArchivedPartition.objects.get(partition_name="chart_record_2024_01")
    assert (manifest.table_name, manifest.row_count) == ("chart.chart_record", 2)
    assert manifest.object_key.startswith("archive/chart/chart_record/chart_record_2024_01__")
    # Every current record is still there: facts made again from scratch are the same.
    refresh_facts(
        dataset=customers,
        run=Run.objects.create(
            dataset=customers, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test"
        ),
    )
    assert facts() == facts_before

    call_command("restore_partition", "chart.chart_record", "2024-01", actor="officer")

    assert chart_rows(OLD_MONTH) == january
    manifest.refresh_from_db()
    assert manifest.restored_by == "officer"


def test_chart_partitions_are_on_the_storage_page(db):
    infos = {(p.table, p.name): p for p in storage.partitions()}
    assert infos[("chart.chart_record", "chart_record_default")].is_default
    month = CHART_RECORDS.partition_name(CHART_RECORDS.period_start(date.today()))
    assert ("chart.chart_record", month) in infos
    defaults = {d.table: d for d in storage.default_partitions()}
    assert defaults["chart.chart_record"].has_rows is False
