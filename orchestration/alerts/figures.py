"""What the alert rules are evaluated against: every dataset's figures in one query of
index probes over runs, quality scores and open suggestions, and the platform's own
(dead letters, rows in DEFAULT partitions, when workers and beat were last seen)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models

from atlas_site.partitions import PARTITIONED_TABLES
from atlas_site.schemas import sql_table
from governance.compliance.models import ClassificationSuggestion, SuggestionStatus
from governance.pipeline.models import (
    FRESHNESS_KINDS,
    Dataset,
    DatasetField,
    DeadLetter,
    Heartbeat,
    Run,
    RunKind,
    RunStatus,
)
from governance.quality.models import QualityScore


@dataclass(frozen=True)
class DatasetFigures:
    id: int
    slug: str
    freshness_lag: float | None  # seconds since its last successful load or promotion
    freshness_target: float
    chart_run_in: int | None  # examined by its last ended explore → chart run
    chart_run_quarantined: int | None
    score_below: bool | None  # its latest quality score fell below its threshold
    # Kinds of run whose latest ended run failed.
    failed_kinds: tuple[str, ...]
    # Points (of 100) its latest quality score fell from the one before (negative: rose).
    score_drop: float | None = None
    # When its oldest PII suggestion still waiting for a steward was made.
    oldest_suggestion_at: datetime | None = None


def dataset_figures(now: datetime) -> list[DatasetFigures]:
    """Every active dataset's figures in one query (run_dataset_kind_idx, score_dataset_idx)."""
    run, score = sql_table(Run), sql_table(QualityScore)
    suggestion, field = sql_table(ClassificationSuggestion), sql_table(DatasetField)
    sql = f"""
        SELECT d.id, d.slug, EXTRACT(EPOCH FROM d.freshness_target),
               (SELECT max(f.finished_at) FROM unnest(%(fresh)s::text[]) k(kind)
                  CROSS JOIN LATERAL (
                      SELECT finished_at FROM {run}
                       WHERE dataset_id = d.id AND kind = k.kind AND status = %(ok)s
                         AND finished_at IS NOT NULL
                       ORDER BY created_at DESC LIMIT 1) f),
               q.rows_in, q.rows_quarantined, s.below_threshold,
               (SELECT coalesce(array_agg(k.kind ORDER BY k.kind), '{{}}')
                  FROM unnest(%(kinds)s::text[]) k(kind)
                 WHERE (SELECT status FROM {run}
                         WHERE dataset_id = d.id AND kind = k.kind
                           AND status = ANY(%(ended)s)
                         ORDER BY created_at DESC LIMIT 1) = %(failed)s),
               100 * (s.previous - s.overall),
               (SELECT min(cs.created_at) FROM {field} f
                  JOIN {suggestion} cs ON cs.dataset_field_id = f.id AND cs.status = %(open)s
                 WHERE f.dataset_id = d.id)
          FROM {sql_table(Dataset)} d
          LEFT JOIN LATERAL (
               SELECT rows_in, rows_quarantined FROM {run}
                WHERE dataset_id = d.id AND kind = %(chart)s AND status = ANY(%(ended)s)
                ORDER BY created_at DESC LIMIT 1) q ON true
          LEFT JOIN LATERAL (
               SELECT below_threshold, overall,
                      lead(overall) OVER (ORDER BY created_at DESC) AS previous
                 FROM {score}
                WHERE dataset_id = d.id ORDER BY created_at DESC LIMIT 1) s ON true
         WHERE d.is_active
         ORDER BY d.slug
    """
    params: dict[str, Any] = {
        "fresh": [kind.value for kind in FRESHNESS_KINDS],
        "kinds": [kind.value for kind in RunKind],
        "ok": RunStatus.SUCCEEDED.value,
        "failed": RunStatus.FAILED.value,
        "ended": [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value],
        "chart": RunKind.PROMOTE_CHART.value,
        "open": SuggestionStatus.OPEN.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        DatasetFigures(
            id=pk,
            slug=slug,
            freshness_lag=(now - last).total_seconds() if last is not None else None,
            freshness_target=float(target),
            chart_run_in=rows_in,
            chart_run_quarantined=quarantined,
            score_below=below,
            failed_kinds=tuple(failed),
            score_drop=float(drop) if drop is not None else None,
            oldest_suggestion_at=oldest_suggestion,
        )
        for (
            pk,
            slug,
            target,
            last,
            rows_in,
            quarantined,
            below,
            failed,
            drop,
            oldest_suggestion,
        ) in rows
    ]


# Rows counted in a DEFAULT partition at most: the alert says "at least" past it, and the
# count stays an index-free scan of a bounded number of rows.
DEFAULT_ROWS_COUNTED = 100_000


@dataclass(frozen=True)
class PlatformFigures:
    dead_letters: int
    # DEFAULT partition -> rows in it (counted up to DEFAULT_ROWS_COUNTED), only those holding any.
    default_rows: dict[str, int]
    # Seconds since a worker / the scheduler last beat (orchestration.liveness); None: never.
    worker_silent_for: float | None
    beat_silent_for: float | None


def platform_figures(now: datetime) -> PlatformFigures:
    default_rows = {}
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            name = table.partition_sql_name(table.default_partition)
            cursor.execute(
                f"SELECT count(*) FROM (SELECT FROM {name} LIMIT %s) r", [DEFAULT_ROWS_COUNTED]
            )
            count = cursor.fetchone()[0]
            if count:
                default_rows[f"{table.schema}.{table.default_partition}"] = count
    seen = dict(
        Heartbeat.objects.values("component")
        .annotate(last=models.Max("seen_at"))
        .values_list("component", "last")
    )

    def silent_for(component: str) -> float | None:
        last = seen.get(component)
        return (now - last).total_seconds() if last is not None else None

    return PlatformFigures(
        dead_letters=DeadLetter.objects.count(),
        default_rows=default_rows,
        worker_silent_for=silent_for("worker"),
        beat_silent_for=silent_for("beat"),
    )
