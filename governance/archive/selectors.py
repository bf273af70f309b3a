"""Reads of the archive area: partitions and their bounds, and what retention will do.

The retention rule (stated in the README and in every run's detail):

Partitions are per table, not per dataset, so a partition is retired whole, and only
when every dataset with rows in it is covered by a retention policy that has expired
it. A dataset is covered by its own policy for the layer, or else by the layer's
"all datasets" policy. A partition is expired for a dataset once its range ended more
than `keep_months` months ago. A legal hold on any policy covering a dataset in the
partition (the dataset's own or the layer-wide one, enabled or not) keeps the whole
partition: nothing is archived or dropped. The partition is dropped without export
only when every covering policy says "delete"; otherwise it is archived. An empty
partition and the audit log (which has no datasets) follow the layer-wide policy.
DEFAULT partitions are never retired: partition upkeep moves their rows first.

Chart keeps history, not the present: a partition of chart records holding a record
still current for its business key is kept whatever the policies say, since the facts,
the reporting views and supersession read the current records. Only a month whose
records have all been superseded is retired, so no fact or view changes when it goes.
"""

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from atlas_site.partitions import (
    AUDIT_LOG,
    CHART_RECORDS,
    FACTS,
    RAW_RECORDS,
    Partition,
    PartitionedTable,
    attached_partitions,
)
from governance.archive.models import (
    ArchivedPartition,
    RetentionAction,
    RetentionLayer,
    RetentionPolicy,
)

RETENTION_RULE = (
    "A partition is retired whole, only when every dataset with rows in it is covered by "
    "an enabled policy (its own, else the layer's 'all datasets' one) whose keep_months "
    "have passed since the partition's range ended; a legal hold on any policy covering "
    "one of its datasets keeps the whole partition; it is dropped without export only "
    "when every covering policy says delete, otherwise archived and verified first. A "
    "partition of chart records is kept while any record in it is current for its "
    "business key: chart retires superseded history only."
)

TABLE_OF_LAYER = {
    RetentionLayer.EXPLORE: RAW_RECORDS,
    RetentionLayer.CHART: CHART_RECORDS,
    RetentionLayer.NAVIGATE: FACTS,
    RetentionLayer.COMPLIANCE: AUDIT_LOG,
}

# What retention does with a partition.
DUE = "due"  # archived (or dropped) by the next run
HELD = "held"  # a legal hold keeps it
WAITING = "waiting"  # not expired yet for some dataset in it (due_on says when)
NOT_COVERED = "not covered"  # some dataset in it has no policy: kept
ARCHIVED_BEFORE = "archived before"  # its range has an archive not restored: restore first
RESTORED = "restored"  # restored recently: kept until ATLAS_ARCHIVE_RESTORED_KEEP_DAYS pass
IN_USE = "in use"  # expired, but holds rows its table keeps (PartitionedTable.kept_while)


@dataclass
class PlannedPartition:
    """What retention does with one ended partition, and why."""

    partition: Partition
    status: str
    action: str = ""  # RetentionAction when due (or waiting: what it will be)
    due_on: date | None = None  # the day it becomes due; None when no policy covers it
    datasets: list[int] = field(default_factory=list)
    policies: list[int] = field(default_factory=list)  # the policies that decide it
    estimated_rows: int = 0
    reason: str = ""

    @property
    def table_name(self) -> str:
        return self.partition.table_name

    @property
    def partition_name(self) -> str:
        return self.partition.name

    def as_dict(self) -> dict:
        return {
            "table": self.table_name,
            "partition": self.partition.name,
            "range": [self.partition.start.isoformat(), self.partition.end.isoformat()],
            "status": self.status,
            "action": self.action,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "datasets": self.datasets,
            "reason": self.reason,
        }


def months_before(day: date, months: int) -> date:
    """The same day `months` months earlier (the month's last day when it has fewer days)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def months_after(day: date, months: int) -> date:
    return months_before(day, -months)


def datasets_in(partition: Partition, cursor) -> list[int]:
    """Ids of the datasets with rows in the partition (none for the audit log)."""
    if partition.table in (RAW_RECORDS, CHART_RECORDS):
        cursor.execute(f"SELECT DISTINCT dataset_id FROM {partition.sql_name}")
    elif partition.table is FACTS:
        cursor.execute(
            f"SELECT DISTINCT m.dataset_id FROM {partition.sql_name} f "
            f'JOIN "navigate"."metric_definition" m ON m.id = f.metric_id'
        )
    else:
        return []
    return sorted(row[0] for row in cursor.fetchall())


def has_rows(partition: Partition, cursor) -> bool:
    cursor.execute(f"SELECT EXISTS (SELECT FROM {partition.sql_name})")
    return cursor.fetchone()[0]


def holds_kept_rows(partition: Partition, cursor) -> bool:
    """Whether the partition holds a row its table keeps (`kept_while`, e.g. a current
    chart record). Reads the whole partition when it holds none: asked only of
    partitions otherwise due."""
    if not partition.table.kept_while:
        return False
    cursor.execute(
        f"SELECT EXISTS (SELECT FROM {partition.sql_name} WHERE {partition.table.kept_while})"
    )
    return cursor.fetchone()[0]


def plan_partition(
    partition: Partition,
    policies: list[RetentionPolicy],
    *,
    today: date,
    cursor,
    live_archive: ArchivedPartition | None = None,
    last_restore: ArchivedPartition | None = None,
) -> PlannedPartition:
    """Decide one ended partition under `policies` (those of its layer)."""
    layer_wide = next((p for p in policies if p.dataset_id is None), None)
    own = {p.dataset_id: p for p in policies if p.dataset_id is not None}
    datasets = datasets_in(partition, cursor)
    plan = PlannedPartition(partition=partition, status=WAITING, datasets=datasets)
    plan.estimated_rows = partition.rows_estimate

    covering = [p for p in ([own.get(d) for d in datasets] + [layer_wide]) if p is not None]
    if not datasets:
        covering = [layer_wide] if layer_wide is not None else []
    held = [p for p in covering if p.legal_hold]
    if held:
        plan.status = HELD
        plan.policies = [p.pk for p in held]
        plan.reason = "legal hold: " + "; ".join(
            f"policy {p.pk} ({p.legal_hold_reason})" for p in held
        )
        return plan

    # The policy that decides each dataset: its own when enabled, else the layer-wide one.
    deciding: dict[int | None, RetentionPolicy | None] = {}
    dataset_ids: list[int | None] = [*datasets] or [None]
    for dataset_id in dataset_ids:
        candidate = own.get(dataset_id) if dataset_id is not None else None
        if candidate is None or not candidate.enabled:
            candidate = layer_wide if layer_wide is not None and layer_wide.enabled else None
        deciding[dataset_id] = candidate
    uncovered = [d for d, p in deciding.items() if p is None]
    if uncovered:
        plan.status = NOT_COVERED
        plan.reason = "no enabled policy covers " + (
            ", ".join(f"dataset {d}" for d in uncovered) if datasets else "this table"
        )
        return plan

    chosen = list({p.pk: p for p in deciding.values() if p is not None}.values())
    plan.policies = sorted(p.pk for p in chosen)
    plan.action = (
        RetentionAction.DELETE
        if all(p.action == RetentionAction.DELETE for p in chosen)
        else RetentionAction.ARCHIVE
    )
    plan.due_on = max(months_after(partition.end, p.keep_months) for p in chosen)

    if live_archive is not None and not has_rows(partition, cursor):
        # Recreated empty after its rows were archived: dropping it loses nothing.
        plan.status, plan.action = DUE, RetentionAction.DELETE
        plan.reason = f"empty; its range's rows are archived (manifest {live_archive.pk})"
        return plan
    if live_archive is not None:
        plan.status = ARCHIVED_BEFORE
        plan.reason = (
            f"its range was archived on {live_archive.archived_at:%Y-%m-%d} (manifest "
            f"{live_archive.pk}) and rows have landed in it since: restore the archive first"
        )
        return plan
    if last_restore is not None and last_restore.restored_at is not None:
        keep_until = last_restore.restored_at.astimezone(UTC).date() + timedelta(
            days=settings.ATLAS_ARCHIVE_RESTORED_KEEP_DAYS
        )
        if today < keep_until:
            plan.status = RESTORED
            plan.due_on = max(plan.due_on, keep_until)
            plan.reason = (
                f"restored on {last_restore.restored_at:%Y-%m-%d}: kept until {keep_until}"
            )
            return plan
    if today >= plan.due_on and holds_kept_rows(partition, cursor):
        # No day can be given: it waits until none of its rows is kept any more.
        plan.status = IN_USE
        plan.reason = f"expired on {plan.due_on}, but {partition.table.kept_because}: kept"
        plan.due_on = None
    elif today >= plan.due_on:
        plan.status = DUE
        plan.reason = f"expired on {plan.due_on}"
    else:
        plan.reason = f"kept until {plan.due_on}"
    return plan


def retention_plan(*, today: date | None = None) -> list[PlannedPartition]:
    """What retention does with every ended partition of the layers that have policies.

    Ordered by the day each becomes due (due ones first), then by table and range.
    """
    today = today or timezone.now().date()
    by_layer: dict[str, list[RetentionPolicy]] = {}
    for policy in RetentionPolicy.objects.order_by("pk"):
        by_layer.setdefault(policy.layer, []).append(policy)
    plans = []
    with connection.cursor() as cursor:
        for layer, table in TABLE_OF_LAYER.items():
            if layer not in by_layer:
                continue
            manifests = ArchivedPartition.objects.filter(table_name=table.label)
            live = {m.range_start.date(): m for m in manifests if m.restored_at is None}
            restores: dict[date, ArchivedPartition] = {}
            for manifest in manifests.filter(restored_at__isnull=False).order_by("restored_at"):
                restores[manifest.range_start.date()] = manifest
            for partition in attached_partitions(table, cursor):
                if partition.end > today:
                    continue  # still filling (or ahead of time)
                plans.append(
                    plan_partition(
                        partition,
                        by_layer[layer],
                        today=today,
                        cursor=cursor,
                        live_archive=live.get(partition.start),
                        last_restore=restores.get(partition.start),
                    )
                )
    return sorted(
        plans,
        key=lambda p: (p.due_on or date.max, p.table_name, p.partition.start),
    )


def next_to_archive(*, today: date | None = None, limit: int = 20) -> list[PlannedPartition]:
    """Partitions retention will retire next, soonest first, for dashboards.

    Each item says its table and partition, range, status (due now, waiting, held…),
    the action (archive or delete), the day it becomes due and why. Partitions that no
    policy covers, or that hold rows still in use, are left out.
    """
    plans = [p for p in retention_plan(today=today) if p.status not in (NOT_COVERED, IN_USE)]
    return plans[:limit]


def manifests_of_range(
    partition: Partition,
) -> tuple[ArchivedPartition | None, ArchivedPartition | None]:
    """(the archive of the partition's range not restored, the latest restored one)."""
    manifests = ArchivedPartition.objects.filter(
        table_name=partition.table_name,
        range_start=datetime(*partition.start.timetuple()[:3], tzinfo=UTC),
    )
    return (
        manifests.filter(restored_at__isnull=True).first(),
        manifests.filter(restored_at__isnull=False).order_by("-restored_at").first(),
    )


def partition_for_range(table: PartitionedTable, start: date, cursor=None) -> Partition | None:
    for partition in attached_partitions(table, cursor):
        if partition.start == start:
            return partition
    return None
