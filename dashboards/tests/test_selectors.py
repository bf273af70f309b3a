"""The dashboards' reads: estimates, DEFAULT partitions, what retention archives next."""

from datetime import UTC, date, datetime

import pytest
from django.db import connection

from dashboards.selectors import compliance, overview, storage
from dashboards.tests.conftest import analyze
from explore.models import RawRecord
from governance.archive import selectors as archive_selectors
from governance.archive.models import RetentionPolicy


def test_layer_totals_follow_the_estimates(promoted):
    totals = {t.label: t.rows_estimate for t in overview.layer_totals()}
    assert totals["explore: raw records"] == 6
    assert totals["chart: validated records"] == 4
    assert totals["chart: quarantined records"] == 2
    assert totals["navigate: facts"] >= 1


def test_dataset_totals_come_from_the_run_counters(promoted):
    from navigate.models import Fact

    (entry,) = overview.dataset_totals()
    # The fixture lands rows directly (no ingest run); promotion counted them.
    assert (entry.promoted, entry.quarantined) == (4, 2)
    assert entry.facts == Fact.objects.count() == 3  # signups by month and tier


def test_a_row_in_default_is_reported(land, dataset):
    (raw,) = land(dataset, [{"id": 1}])
    assert not any(d.has_rows for d in storage.default_partitions())
    # A month long before any partition: the row can only land in DEFAULT.
    RawRecord.objects.filter(pk=raw.pk).update(received_at=datetime(1999, 1, 15, tzinfo=UTC))
    analyze()
    defaults = {d.table: d for d in storage.default_partitions()}
    assert defaults["explore.raw_record"].has_rows
    assert defaults["explore.raw_record"].rows_estimate == 1
    assert not defaults["navigate.fact"].has_rows


def make_partition(start: date, end: date) -> str:
    name = f"raw_record_{start:%Y_%m}"
    with connection.cursor() as cursor:
        cursor.execute(
            f'CREATE TABLE "explore"."{name}" PARTITION OF "explore"."raw_record" '
            f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
        )
    return name


def test_partitions_list_ranges_and_default(db):
    old = make_partition(date(2020, 1, 1), date(2020, 2, 1))
    infos = {(p.table, p.name): p for p in storage.partitions()}
    assert infos[("explore.raw_record", old)].range_start == date(2020, 1, 1)
    assert infos[("explore.raw_record", old)].range_end == date(2020, 2, 1)
    assert infos[("explore.raw_record", "raw_record_default")].is_default
    assert {table for table, _ in infos} == {
        "explore.raw_record",
        "navigate.fact",
        "compliance.audit_log",
        "chart.chart_record",
    }


def test_next_to_archive_is_retentions_own_plan_cached(db, dataset):
    old = make_partition(date(2020, 1, 1), date(2020, 2, 1))
    today = date(2021, 2, 10)
    assert storage.next_to_archive(today=today) == []
    policy = RetentionPolicy.objects.create(layer="explore", keep_months=12)
    # A new policy changes the cache key: the plan follows at once.
    plan = storage.next_to_archive(today=today)
    own = archive_selectors.next_to_archive(today=today)
    assert [(p.partition, p.status, p.due_on) for p in plan] == [
        (p.partition_name, p.status, p.due_on) for p in own
    ]
    (entry,) = [p for p in plan if p.partition == old]
    assert (entry.status, entry.action, entry.due_on) == ("due", "archive", date(2021, 2, 1))
    assert entry.range_start == date(2020, 1, 1)

    policy.legal_hold, policy.legal_hold_reason = True, "litigation 42"
    policy.save()
    (entry,) = [p for p in storage.next_to_archive(today=today) if p.partition == old]
    assert entry.status == "held" and "litigation 42" in entry.reason


def test_a_warm_plan_is_served_from_the_cache(db, django_assert_max_num_queries):
    make_partition(date(2020, 1, 1), date(2020, 2, 1))
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    today = date(2021, 2, 10)
    storage.next_to_archive(today=today)
    # Only the two aggregates of the cache key; no partition is read.
    with django_assert_max_num_queries(2):
        assert storage.next_to_archive(today=today)


def test_throughput_fills_every_day(promoted):
    chart = overview.throughput(days=7)
    assert len(chart.labels) == 7
    promoted_series = {s.label: s.data for s in chart.series}["Promote explore → chart"]
    assert promoted_series[-1] == 6 and sum(promoted_series) == 6


def test_open_quarantine_is_counted_up_to_a_cap(promoted):
    (entry,) = compliance.open_quarantine(cap=1)
    assert (entry.open_records, entry.capped) == (1, True)
    (entry,) = compliance.open_quarantine()
    assert (entry.open_records, entry.capped) == (2, False)


def test_score_trends_of_few_runs_are_bars_and_of_more_a_line():
    from dashboards.selectors.quality import ScoreTrend

    def trend(runs: int) -> dict:
        labels = [f"2026-12-0{n + 1} 10:00" for n in range(runs)]
        return ScoreTrend("orders", "Orders", 0.9, labels, [0.95] * runs, {}).as_chart()

    assert trend(1)["type"] == trend(2)["type"] == "bar"
    assert trend(3)["type"] == "line"
    assert trend(1)["threshold"] == 0.9


@pytest.mark.django_db
def test_a_rule_is_named_by_its_datasets_slug(dataset):
    from governance.quality.models import QualityDimension, QualityRule

    rule = QualityRule.objects.create(
        dataset=dataset,
        field_name="email",
        kind="not_null",
        dimension=QualityDimension.objects.get(code="completeness"),
    )
    assert str(rule) == "orders.email not_null"
