"""Writes of the dashboards: the per-run summaries of PII findings and quarantine reasons."""

import logging

from django.db import connection, transaction

from atlas_site.schemas import sql_table
from chart.models import PiiFinding, QuarantinedRecord
from dashboards.models import PiiFindingSummary, QuarantineReasonSummary, SummarisedRun
from dashboards.selectors.storage import next_to_archive
from governance.pipeline.models import Run
from governance.pipeline.services import ENDED

logger = logging.getLogger(__name__)

# Runs summarised per call; a later call (the next run's end) takes the rest.
SUMMARY_BATCH = 200


def summarise_run(*, run: Run) -> bool:
    """Summarise one ended run; False when it was summarised already (or has not ended).

    The marker row is inserted first, in the same transaction: a second caller waits on
    its primary key, then finds it and does nothing, so a run is never counted twice.
    """
    if run.status not in ENDED or run.dataset_id is None:
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {sql_table(SummarisedRun)} (run_id, summarised_at) VALUES (%s, now()) "
            "ON CONFLICT (run_id) DO NOTHING",
            [run.pk],
        )
        if cursor.rowcount != 1:
            return False
        day = (run.started_at or run.created_at).date()
        cursor.execute(
            f"""
            INSERT INTO {sql_table(PiiFindingSummary)}
                   (run_id, dataset_id, day, field_name, pii_type, findings)
            SELECT run_id, dataset_id, %(day)s, field_name, pii_type, count(*)
              FROM {sql_table(PiiFinding)}
             WHERE run_id = %(run)s
             GROUP BY run_id, dataset_id, field_name, pii_type
            """,
            {"run": run.pk, "day": day},
        )
        # One row per (record, field, rule) reason: a record failing two rules counts
        # under both.
        cursor.execute(
            f"""
            INSERT INTO {sql_table(QuarantineReasonSummary)}
                   (run_id, dataset_id, day, field_name, rule, records)
            SELECT q.run_id, q.dataset_id, %(day)s,
                   left(coalesce(reason->>'field', ''), 63),
                   left(coalesce(reason->>'rule', 'unknown'), 63),
                   count(*)
              FROM {sql_table(QuarantinedRecord)} AS q
             CROSS JOIN LATERAL jsonb_array_elements(
                   CASE WHEN jsonb_typeof(q.reasons) = 'array' THEN q.reasons
                        ELSE '[]'::jsonb END) AS reason
             WHERE q.run_id = %(run)s
             GROUP BY 1, 2, 3, 4, 5
            """,
            {"run": run.pk, "day": day},
        )
    return True


def warm_archive_plan() -> None:
    """Have retention's plan in the cache the Storage page reads (see selectors.storage).

    Runs may end every few seconds: the plan is computed only when the one in force
    (this day, these policies and manifests) is not cached yet.
    """
    next_to_archive()


def refresh_dashboards() -> int:
    """What a worker does as a run ends: summarise ended runs, then warm the archive plan
    (the run may have archived partitions, or be the first of a new day)."""
    done = refresh_run_summaries()
    warm_archive_plan()
    return done


def refresh_run_summaries(*, limit: int = SUMMARY_BATCH) -> int:
    """Summarise ended runs not summarised yet, oldest first; returns how many were."""
    pending = (
        Run.objects.filter(status__in=ENDED, dataset__isnull=False)
        .exclude(pk__in=SummarisedRun.objects.values("run_id"))
        .order_by("pk")[:limit]
    )
    done = 0
    for run in pending:
        done += summarise_run(run=run)
    if done:
        logger.info("dashboards: summarised %d ended runs", done)
    return done
