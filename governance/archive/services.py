"""Writes of the archive area: partition upkeep (retention and archiving build on it)."""

from datetime import date

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
)

_AHEAD_SETTING = {MONTH: "months", YEAR: "years", QUARTER: "quarters"}


def ensure_partitions(
    *,
    months: int | None = None,
    years: int | None = None,
    quarters: int | None = None,
    today: date | None = None,
) -> list[PartitionReport]:
    """Create partitions ahead of today for every partitioned table.

    Defaults come from ATLAS_PARTITIONS_AHEAD (3 months, 2 years, 2 quarters). Each
    report names the partitions made, those blocked by rows already in the DEFAULT
    partition for their range, and how many rows sit in DEFAULT.
    """
    overrides = {"months": months, "years": years, "quarters": quarters}
    ahead = {
        **settings.ATLAS_PARTITIONS_AHEAD,
        **{k: v for k, v in overrides.items() if v is not None},
    }
    today = today or timezone.now().date()
    reports = []
    for table in PARTITIONED_TABLES:
        # One transaction per table: a failure on one leaves the others' partitions made.
        with transaction.atomic(), connection.cursor() as cursor:
            reports.append(
                ensure_table_partitions(
                    table, cursor, ahead=ahead[_AHEAD_SETTING[table.interval]], today=today
                )
            )
    return reports
