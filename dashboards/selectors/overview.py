"""The overview page: rows per layer and dataset, throughput, runs, latest scores."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from atlas_site.partitions import FACTS, RAW_RECORDS, estimated_rows
from atlas_site.schemas import sql_table
from chart.models import ChartRecord, QuarantinedRecord
from dashboards.selectors.charts import TREND_DAYS, TimeChart, daily_chart
from governance.pipeline.models import Dataset, Layer, Run, RunKind, RunStatus
from governance.pipeline.services import REPROCESS_TRIGGER
from governance.quality.models import QualityScore
from navigate.models import MetricDefinition


@dataclass(frozen=True)
class LayerTotal:
    layer: str
    label: str
    rows_estimate: int


def layer_totals() -> list[LayerTotal]:
    return [
        LayerTotal(Layer.EXPLORE, "explore: raw records", estimated_rows(RAW_RECORDS.sql_name)),
        LayerTotal(Layer.CHART, "chart: validated records", estimated_rows(sql_table(ChartRecord))),
        LayerTotal(
            Layer.CHART, "chart: quarantined records", estimated_rows(sql_table(QuarantinedRecord))
        ),
        LayerTotal(Layer.NAVIGATE, "navigate: facts", estimated_rows(FACTS.sql_name)),
    ]


@dataclass
class DatasetTotals:
    slug: str
    name: str
    landed: int = 0
    promoted: int = 0
    quarantined: int = 0
    facts: int = 0
    facts_capped: bool = False


# Facts are counted per metric up to this many (index probes, like open quarantine): a
# page shows "10,000+" rather than read every fact of a large metric.
FACTS_CAP = 10_000


def dataset_totals() -> list[DatasetTotals]:
    """Records per dataset and layer (all time), from the runs' counters, and its facts.

    landed: lines loaded into explore; promoted: records that reached chart, first time
    or re-processed out of quarantine; quarantined: records held in quarantine now (a
    re-processed record that reached chart left it: counted once, as promoted); facts:
    the facts of the dataset's metrics (each metric counted up to FACTS_CAP). A run
    rolled back whole (a failed 'fail' gate) has its counters at zero.
    """
    totals = {
        dataset.pk: DatasetTotals(dataset.slug, dataset.name)
        for dataset in Dataset.objects.filter(is_active=True).only("slug", "name")
    }
    rows = (
        Run.objects.filter(
            dataset__in=list(totals), kind__in=[RunKind.INGEST, RunKind.PROMOTE_CHART]
        )
        .values("dataset_id", "kind", "triggered_by")
        .annotate(
            rows_in=Sum("rows_in"),
            promoted=Sum("rows_promoted"),
            quarantined=Sum("rows_quarantined"),
        )
    )
    for row in rows:
        entry = totals[row["dataset_id"]]
        if row["kind"] == RunKind.INGEST:
            entry.landed += row["rows_in"] or 0
        elif row["triggered_by"] == REPROCESS_TRIGGER:
            # Records taken from quarantine: those promoted left it.
            entry.promoted += row["promoted"] or 0
            entry.quarantined -= row["promoted"] or 0
        else:
            entry.promoted += row["promoted"] or 0
            entry.quarantined += row["quarantined"] or 0
    _count_facts(totals)
    return sorted(totals.values(), key=lambda t: t.slug)


def _count_facts(totals: dict[int, DatasetTotals]) -> None:
    """Each dataset's facts, its metrics counted up to FACTS_CAP each, in one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT m.dataset_id, counted.facts
              FROM {sql_table(MetricDefinition)} m
             CROSS JOIN LATERAL (
                   SELECT count(*) AS facts FROM (
                          SELECT 1 FROM {FACTS.sql_name} f
                           WHERE f.metric_id = m.id LIMIT %(cap)s) capped) counted
             WHERE m.dataset_id = ANY(%(datasets)s)
            """,
            {"cap": FACTS_CAP + 1, "datasets": list(totals)},
        )
        for dataset_id, count in cursor.fetchall():
            entry = totals[dataset_id]
            entry.facts += min(count, FACTS_CAP)
            entry.facts_capped |= count > FACTS_CAP


_COUNTED_KINDS = (RunKind.INGEST, RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE)


def throughput(*, days: int = TREND_DAYS, today: date | None = None) -> TimeChart:
    """Rows taken in per day and per run kind over the last `days` days."""
    today = today or timezone.now().date()
    since = today - timedelta(days=days - 1)
    rows = (
        Run.objects.filter(
            created_at__gte=datetime.combine(since, datetime.min.time(), tzinfo=UTC),
            kind__in=_COUNTED_KINDS,
        )
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "kind")
        .annotate(rows=Sum("rows_in"))
    )
    by_kind: dict[str, dict[date, int]] = defaultdict(dict)
    for row in rows:
        by_kind[row["kind"]][row["day"]] = row["rows"] or 0
    return daily_chart(
        since, today, {str(RunKind(kind).label): by_kind[kind] for kind in _COUNTED_KINDS}
    )


def recent_runs(*, limit: int = 15) -> list[Run]:
    return list(Run.objects.select_related("dataset").order_by("-created_at", "-pk")[:limit])


def recent_failures(*, limit: int = 10, days: int = TREND_DAYS) -> list[Run]:
    since = timezone.now() - timedelta(days=days)
    return list(
        Run.objects.filter(status=RunStatus.FAILED, created_at__gte=since)
        .select_related("dataset")
        .order_by("-created_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class LatestScore:
    dataset: str
    overall: float | None
    threshold: float
    at: datetime
    run_id: int


def latest_scores() -> list[LatestScore]:
    """Each active dataset's latest overall score (one index probe per dataset)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT d.slug, s.overall, d.quality_threshold, s.created_at, s.run_id
              FROM {sql_table(Dataset)} d
             CROSS JOIN LATERAL (
                   SELECT overall, created_at, run_id FROM {sql_table(QualityScore)}
                    WHERE dataset_id = d.id ORDER BY created_at DESC LIMIT 1) s
             WHERE d.is_active
             ORDER BY d.slug
            """
        )
        return [
            LatestScore(
                slug,
                float(overall) if overall is not None else None,
                float(threshold),
                at,
                run_id,
            )
            for slug, overall, threshold, at, run_id in cursor.fetchall()
        ]


def datasets_below_threshold() -> list[LatestScore]:
    return [s for s in latest_scores() if s.overall is not None and s.overall < s.threshold]


@dataclass(frozen=True)
class RunCounts:
    running: int
    failed_recent: int
    succeeded_recent: int


def run_counts(*, days: int = 1) -> RunCounts:
    since = timezone.now() - timedelta(days=days)
    counts = Run.objects.aggregate(
        running=Count("pk", filter=Q(status=RunStatus.RUNNING)),
        failed=Count("pk", filter=Q(status=RunStatus.FAILED, created_at__gte=since)),
        succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED, created_at__gte=since)),
    )
    return RunCounts(counts["running"], counts["failed"], counts["succeeded"])
