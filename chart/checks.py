"""System checks of the chart layer (run by `manage.py migrate` and `check --database`)."""

from django.core import checks
from django.db import DatabaseError, transaction

from chart.models import LEGACY_MASKED, ChartRecord

LEGACY_COUNT_CAP = 10_000


def legacy_chart_values(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """atlas.W010: chart records still masked at promotion, and the command that fixes them.

    Cheap: a capped count over the partial index of legacy records, which is empty once
    they are rebuilt. Silent where the table is not there yet (before `migrate`).
    """
    if not databases or "default" not in databases:
        return []

    try:
        with transaction.atomic():
            count = ChartRecord.objects.filter(protection_version=LEGACY_MASKED)[
                : LEGACY_COUNT_CAP + 1
            ].count()
    except DatabaseError:
        return []
    if not count:
        return []
    shown = f"{LEGACY_COUNT_CAP}+" if count > LEGACY_COUNT_CAP else str(count)
    return [
        checks.Warning(
            f"{shown} chart records still hold values masked at promotion (protection_version "
            "1): uniqueness, business keys and metrics over them compare masked values.",
            hint="Run `manage.py rebuild_chart_values` (resumable; --dataset SLUG, "
            "--batch-size N) to rebuild them as typed values from explore.",
            id="atlas.W010",
        )
    ]
