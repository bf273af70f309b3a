"""The storage page: partitions and their sizes, DEFAULT partitions, what retention
retires next."""

import hashlib
from dataclasses import dataclass
from datetime import date

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone

from atlas_site.partitions import (
    PARTITIONED_TABLES,
    attached_partitions,
    estimated_rows,
    size_on_disk,
)
from dashboards.selectors.charts import Series, TimeChart
from governance.archive import selectors as archive_selectors
from governance.archive.models import ArchivedPartition, RetentionPolicy


@dataclass(frozen=True)
class PartitionInfo:
    table: str  # parent, schema.table
    name: str  # the partition
    is_default: bool
    range_start: date | None
    range_end: date | None
    rows_estimate: int
    total_bytes: int


def partitions() -> list[PartitionInfo]:
    """Every partition of every partitioned table: its range, estimated rows and size."""
    result: list[PartitionInfo] = []
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            default = table.partition_sql_name(table.default_partition)
            result.append(
                PartitionInfo(
                    table=table.label,
                    name=table.default_partition,
                    is_default=True,
                    range_start=None,
                    range_end=None,
                    rows_estimate=estimated_rows(default, cursor),
                    total_bytes=size_on_disk(default, cursor),
                )
            )
            result.extend(
                PartitionInfo(
                    table=table.label,
                    name=partition.name,
                    is_default=False,
                    range_start=partition.start,
                    range_end=partition.end,
                    rows_estimate=partition.rows_estimate,
                    total_bytes=partition.total_bytes or 0,
                )
                for partition in attached_partitions(table, cursor, sizes=True)
            )
    # Newest first within each table; DEFAULT at the top, where it is noticed.
    result.sort(key=lambda p: (p.table, not p.is_default, -(p.range_start or date.min).toordinal()))
    return result


@dataclass(frozen=True)
class DefaultPartition:
    table: str
    partition: str
    has_rows: bool
    rows_estimate: int


def default_partitions() -> list[DefaultPartition]:
    """Each table's DEFAULT partition: whether it holds rows (exact), and about how many."""
    result = []
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            partition = table.partition_sql_name(table.default_partition)
            # EXISTS stops at the first row: exact and cheap whatever the size.
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {partition})")
            has_rows = cursor.fetchone()[0]
            estimate = estimated_rows(partition, cursor)
            result.append(
                DefaultPartition(
                    table=table.label,
                    partition=table.default_partition,
                    has_rows=has_rows,
                    # An estimate can lag behind: never show 0 rows for a partition with rows.
                    rows_estimate=max(estimate, 1) if has_rows else 0,
                )
            )
    return result


# The retention rule has one home, governance.archive.selectors; its plan reads every
# ended partition (which datasets have rows in it), about a second on a million rows,
# so the page shows it from the cache. The key changes with the day, the policies and
# the archive manifests; a worker refreshes it as runs end (services.warm_archive_plan).
ARCHIVE_PLAN_TTL = 60 * 60


@dataclass(frozen=True)
class PlannedRetirement:
    table: str
    partition: str
    range_start: date
    range_end: date
    status: str  # due, waiting, held, archived before, restored
    action: str  # archive or delete
    due_on: date | None
    rows_estimate: int
    reason: str


def archive_plan_key(*, today: date) -> str:
    policies = RetentionPolicy.objects.aggregate(
        n=Count("pk"), last=Max("pk"), changed=Max("updated_at")
    )
    manifests = ArchivedPartition.objects.aggregate(
        n=Count("pk"), last=Max("pk"), restored=Max("restored_at")
    )
    version = repr((sorted(policies.items()), sorted(manifests.items())))
    return f"dashboards:archive-plan:{today}:{hashlib.sha256(version.encode()).hexdigest()}"


def compute_archive_plan(*, today: date) -> list[PlannedRetirement]:
    return [
        PlannedRetirement(
            table=plan.table_name,
            partition=plan.partition_name,
            range_start=plan.partition.start,
            range_end=plan.partition.end,
            status=plan.status,
            action=plan.action,
            due_on=plan.due_on,
            rows_estimate=plan.estimated_rows,
            reason=plan.reason,
        )
        for plan in archive_selectors.next_to_archive(today=today)
    ]


def next_to_archive(*, today: date | None = None) -> list[PlannedRetirement]:
    """What retention retires next (governance.archive's plan), soonest first, cached."""
    today = today or timezone.now().date()
    key = archive_plan_key(today=today)
    plan = cache.get(key)
    if plan is None:
        plan = compute_archive_plan(today=today)
        cache.set(key, plan, ARCHIVE_PLAN_TTL)
    return plan


def storage_chart(infos: list[PartitionInfo]) -> dict:
    """Size of each partitioned table's partitions (MB), one bar per partition."""
    tables = sorted({p.table for p in infos})
    labels = [p.name for p in infos]
    series = [
        Series(t, [round(p.total_bytes / 1024**2, 2) if p.table == t else None for p in infos])
        for t in tables
    ]
    return TimeChart(labels, series).as_chart(kind="bar", stacked=True, title="Partition size (MB)")
