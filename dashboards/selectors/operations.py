"""The figures /metrics gives alerting: freshness, ages, dead letters, quarantine, backlog.

Every query is bounded by the number of datasets (index probes per dataset through
LATERAL joins), runs or batches waiting, never by the data layers: a backlog is counted
up to BACKLOG_CAP records per dataset and layer. Nothing here reads a record's values;
only counts, ages, dataset slugs, run kinds and statuses come out.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.db.models.functions import Coalesce
from django.utils import timezone

from atlas_site import advisory_locks
from atlas_site.schemas import sql_table
from chart.models import ChartRecord
from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import (
    FRESHNESS_KINDS,
    Dataset,
    DeadLetter,
    Heartbeat,
    Layer,
    Run,
    RunKind,
    RunStatus,
    Watermark,
)

# Records above a watermark counted up to this many per dataset and layer.
BACKLOG_CAP = 10_000
ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED)


@dataclass(frozen=True)
class DatasetHealth:
    slug: str
    # Seconds since its last successful load or promotion to chart; None: never.
    freshness_lag: float | None
    freshness_target: float
    # Quarantined / examined of its last ended explore → chart run; None: no such run.
    quarantine_share: float | None
    # Raw records above the chart watermark (raw record ids); chart records above the
    # navigate one, read through chart_record_raw_idx as those made from raw records after
    # the watermark's own (an estimate: a re-processed quarantined record, made late from
    # an early raw record, is not counted). Each counted up to BACKLOG_CAP.
    chart_backlog: int
    navigate_backlog: int


def dataset_health(now: datetime | None = None) -> list[DatasetHealth]:
    """Each active dataset's freshness, last chart run's quarantine share and backlog, in
    one query: each figure an index probe (run_dataset_kind_idx, raw_record_dataset_id_idx,
    chart_record_raw_idx) bounded per dataset."""
    now = now or timezone.now()
    run, raw, chart = sql_table(Run), sql_table(RawRecord), sql_table(ChartRecord)
    watermark = sql_table(Watermark)
    freshness = " UNION ALL ".join(
        f"""(SELECT finished_at FROM {run}
              WHERE dataset_id = d.id AND kind = %(kind_{i})s AND status = %(succeeded)s
                AND finished_at IS NOT NULL
              ORDER BY created_at DESC LIMIT 1)"""
        for i in range(len(FRESHNESS_KINDS))
    )
    sql = f"""
        SELECT d.slug, EXTRACT(EPOCH FROM d.freshness_target),
               (SELECT max(finished_at) FROM ({freshness}) f),
               q.rows_in, q.rows_quarantined,
               (SELECT count(*) FROM (
                    SELECT 1 FROM {raw} r
                     WHERE r.dataset_id = d.id
                       AND r.id > COALESCE((SELECT position FROM {watermark}
                                             WHERE dataset_id = d.id AND layer = %(chart)s), 0)
                     LIMIT %(cap)s) c),
               (SELECT count(*) FROM (
                    SELECT 1 FROM {chart} c
                     WHERE c.dataset_id = d.id
                       AND c.raw_record_id > COALESCE((
                            SELECT m.raw_record_id FROM {chart} m
                             WHERE m.id = (SELECT position FROM {watermark}
                                            WHERE dataset_id = d.id AND layer = %(navigate)s)
                           ), 0)
                     LIMIT %(cap)s) n)
          FROM {sql_table(Dataset)} d
          LEFT JOIN LATERAL (
               SELECT rows_in, rows_quarantined FROM {run}
                WHERE dataset_id = d.id AND kind = %(promote_chart)s
                  AND status = ANY(%(ended)s)
                ORDER BY created_at DESC LIMIT 1) q ON true
         WHERE d.is_active
         ORDER BY d.slug
    """
    params: dict[str, Any] = {
        "succeeded": RunStatus.SUCCEEDED.value,
        "chart": Layer.CHART.value,
        "navigate": Layer.NAVIGATE.value,
        "promote_chart": RunKind.PROMOTE_CHART.value,
        "ended": [status.value for status in ENDED],
        "cap": BACKLOG_CAP,
    }
    for i, kind in enumerate(FRESHNESS_KINDS):
        params[f"kind_{i}"] = kind.value
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner prices the capped backlog scans over every partition high enough to
        # JIT-compile the query: about 0.4 s of compiling for 40 ms of work at a million
        # raw records (bench/dashboards.py, /metrics).
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        DatasetHealth(
            slug=slug,
            freshness_lag=(now - last).total_seconds() if last is not None else None,
            freshness_target=float(target),
            quarantine_share=(quarantined / examined if examined else 0.0)
            if examined is not None
            else None,
            chart_backlog=chart_backlog,
            navigate_backlog=navigate_backlog,
        )
        for slug, target, last, examined, quarantined, chart_backlog, navigate_backlog in rows
    ]


def last_success_ages(now: datetime | None = None) -> dict[tuple[str, str], float]:
    """(dataset slug, run kind) -> seconds since its latest successful run finished."""
    now = now or timezone.now()
    rows = (
        Run.objects.filter(
            status=RunStatus.SUCCEEDED, dataset__isnull=False, finished_at__isnull=False
        )
        .values("dataset__slug", "kind")
        .annotate(at=Max("finished_at"))
        .order_by()
    )
    return {(row["dataset__slug"], row["kind"]): (now - row["at"]).total_seconds() for row in rows}


def skipped_runs() -> dict[tuple[str, str], int]:
    """(dataset slug, run kind) -> runs skipped (another run of the kind was under way)."""
    rows = (
        Run.objects.filter(status=RunStatus.SKIPPED, dataset__isnull=False)
        .values("dataset__slug", "kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {(row["dataset__slug"], row["kind"]): row["n"] for row in rows}


def dead_letter_count() -> int:
    """Messages set aside after killing their workers (few, by design: each is one task
    that crashed its worker ATLAS_MAX_DELIVERIES times)."""
    return DeadLetter.objects.count()


def oldest_active_run_ages(now: datetime | None = None) -> dict[str, float]:
    """Status (queued, running) -> age in seconds of its oldest run: since it was made
    (queued) or started (running). Through run_status_idx; statuses absent are left out."""
    now = now or timezone.now()
    rows = (
        Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        .values("status")
        .annotate(since=Min(Coalesce("started_at", "created_at")))
        .order_by()
    )
    return {row["status"]: (now - row["since"]).total_seconds() for row in rows}


def oldest_pending_batch_ages(now: datetime | None = None) -> dict[str, float]:
    """Status (stored, loading) -> age in seconds of its oldest landing batch."""
    now = now or timezone.now()
    rows = (
        LandingBatch.objects.filter(status__in=[BatchStatus.STORED, BatchStatus.LOADING])
        .values("status")
        .annotate(since=Min("created_at"))
        .order_by()
    )
    return {row["status"]: (now - row["since"]).total_seconds() for row in rows}


def component_silences(now: datetime | None = None) -> dict[str, float]:
    """Component (worker, beat) -> seconds since any of its processes last said it was
    alive (orchestration.liveness); components never seen are left out."""
    now = now or timezone.now()
    rows = (
        Heartbeat.objects.filter(component__in=["worker", "beat"])
        .values("component")
        .annotate(last=Max("seen_at"))
        .order_by()
    )
    return {row["component"]: (now - row["last"]).total_seconds() for row in rows}


@dataclass(frozen=True)
class LockHolder:
    slug: str
    layer: str
    run_id: int | None  # the dataset's running promotion into the layer, if any
    held_for: float  # seconds: since that run started, else since the holding session began


# The promotion locks (atlas_site.advisory_locks) held in this database, with their holders.
_PROMOTION_LOCKS = f"""
    SELECT l.classid, d.slug, r.id,
           EXTRACT(EPOCH FROM %(now)s - coalesce(r.started_at, a.backend_start))
      FROM pg_locks l
      JOIN pg_stat_activity a ON a.pid = l.pid
      JOIN {sql_table(Dataset)} d ON d.id = l.objid
      LEFT JOIN LATERAL (
           SELECT id, started_at FROM {sql_table(Run)}
            WHERE dataset_id = d.id AND status = %(running)s
              AND kind = CASE l.classid WHEN %(chart_lock)s THEN %(chart)s ELSE %(navigate)s END
            ORDER BY created_at DESC LIMIT 1) r ON true
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid IN (%(chart_lock)s, %(navigate_lock)s)
     ORDER BY d.slug, l.classid
"""


def promotion_lock_holders(now: datetime | None = None) -> list[LockHolder]:
    """Who holds each dataset's promotion lock, and since when (from pg_locks: one row
    per lock held, so bounded by the promotions under way)."""
    params: dict[str, Any] = {
        "now": now or timezone.now(),
        "running": RunStatus.RUNNING.value,
        "chart_lock": advisory_locks.PROMOTE_CHART,
        "navigate_lock": advisory_locks.PROMOTE_NAVIGATE,
        "chart": RunKind.PROMOTE_CHART.value,
        "navigate": RunKind.PROMOTE_NAVIGATE.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_PROMOTION_LOCKS, params)
        rows = cursor.fetchall()
    layers = {
        advisory_locks.PROMOTE_CHART: Layer.CHART,
        advisory_locks.PROMOTE_NAVIGATE: Layer.NAVIGATE,
    }
    return [
        LockHolder(slug=slug, layer=layers[classid].value, run_id=run_id, held_for=float(held_for))
        for classid, slug, run_id, held_for in rows
    ]
