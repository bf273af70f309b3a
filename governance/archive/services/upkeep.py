"""Partition upkeep: partitions made ahead of today, rows moved out of DEFAULT partitions."""

from datetime import UTC, date

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from atlas_site.partitions import (
    MONTH,
    PARTITIONED_TABLES,
    QUARTER,
    YEAR,
    PartitionReport,
    ensure_table_partitions,
    move_default_rows,
)
from governance.archive.models import ArchivedPartition
from governance.archive.services.ddl import lock_table
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit

UPKEEP_ACTOR = "partition upkeep"

_AHEAD_SETTING = {MONTH: "months", YEAR: "years", QUARTER: "quarters"}


def ensure_partitions(
    *,
    months: int | None = None,
    years: int | None = None,
    quarters: int | None = None,
    today: date | None = None,
) -> list[PartitionReport]:
    """Move rows out of DEFAULT partitions, then create partitions ahead of today.

    Defaults come from ATLAS_PARTITIONS_AHEAD (3 months, 2 years, 2 quarters). Rows in
    a DEFAULT partition get partitions of their own periods (see
    `atlas_site.partitions.move_default_rows`). A range whose rows are archived is not
    made again ahead of need. Each report names the partitions made, the rows moved
    out of DEFAULT and how many rows are left there.
    """
    overrides = {"months": months, "years": years, "quarters": quarters}
    ahead = {
        **settings.ATLAS_PARTITIONS_AHEAD,
        **{k: v for k, v in overrides.items() if v is not None},
    }
    today = today or timezone.now().date()
    reports = []
    for table in PARTITIONED_TABLES:
        archived = {
            table.partition_name(start.astimezone(UTC).date())
            for start in ArchivedPartition.objects.filter(
                table_name=table.label, restored_at__isnull=True
            ).values_list("range_start", flat=True)
        }
        # One transaction per table: a failure on one leaves the others' partitions made.
        with transaction.atomic(), connection.cursor() as cursor:
            lock_table(cursor, table)
            moved = move_default_rows(table, cursor)
            report = ensure_table_partitions(
                table,
                cursor,
                ahead=ahead[_AHEAD_SETTING[table.interval]],
                today=today,
                skip=archived,
            )
            report.moved = moved
            report.created = sorted(set(report.created) | set(moved))
            if moved:
                record_audit(
                    actor=UPKEEP_ACTOR,
                    action=AuditAction.ACTION,
                    object_type="partition",
                    object_id=report.table,
                    object_repr=f"{report.table} DEFAULT partition",
                    after={"moved": moved},
                    detail=f"moved {sum(moved.values())} rows out of the DEFAULT partition of "
                    f"{report.table} into " + ", ".join(f"{n} ({c})" for n, c in moved.items()),
                )
        reports.append(report)
    return reports
