"""Reads behind the dashboards. Every one is bounded, whatever the size of the data layers.

Nothing here counts a big table row by row: row counts come from PostgreSQL's own
estimates (pg_class.reltuples, kept by ANALYZE and autovacuum), from the counters each
run keeps (rows in, promoted, quarantined), and from the per-run summaries of PII
findings and quarantine reasons (`dashboards.models`). Lists are LIMITed and walk an
index. Where an exact number matters but could be large, it is counted up to a cap.
"""

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from atlas_site.partitions import FACTS, PARTITIONED_TABLES, RAW_RECORDS
from chart.models import ChartRecord, QuarantinedRecord, QuarantineStatus
from dashboards.models import PiiFindingSummary, QuarantineReasonSummary
from governance.archive import selectors as archive_selectors
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.compliance.models import (
    AuditLog,
    ClassificationLevel,
    ClassificationSuggestion,
    SuggestionStatus,
)
from governance.pipeline.models import (
    Dataset,
    DatasetField,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
)
from governance.pipeline.selectors import field_classifications
from governance.quality.models import CheckResult, QualityDimension, QualityScore

# How far back the charts over time look.
TREND_DAYS = 30
COMPLIANCE_DAYS = 90
# Scores drawn per dataset on the quality page.
SCORES_PER_DATASET = 30
# Exact counts stop here; the page then shows "10,000+".
COUNT_CAP = 10_000


def _quoted(db_table: str) -> str:
    return connection.ops.quote_name(db_table)


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def _daily_chart(since: date, until: date, per_series: dict[str, dict[date, int]]) -> "TimeChart":
    """A series per name in the given order, a point per day from since to until (0 if none)."""
    days = _days(since, until)
    return TimeChart(
        labels=[d.isoformat() for d in days],
        series=[
            Series(name, [counts.get(d, 0) for d in days]) for name, counts in per_series.items()
        ],
    )


# --- Row estimates ----------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionInfo:
    table: str  # parent, schema.table
    name: str  # the partition
    is_default: bool
    range_start: date | None
    range_end: date | None
    rows_estimate: int
    total_bytes: int


_BOUND = re.compile(r"FROM \('([0-9-]+)[^']*'\) TO \('([0-9-]+)[^']*'\)")


def _estimate_sql() -> str:
    # reltuples is -1 until the table was first analyzed; the statistics collector's
    # live-tuple count stands in until then.
    return "CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE coalesce(s.n_live_tup, 0) END"


def table_row_estimate(db_table: str) -> int:
    """Estimated rows of a table, summed over its partitions when it has them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT coalesce(sum({_estimate_sql()}), 0)
              FROM pg_class c
              LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
             WHERE c.relkind = 'r'
               AND (c.oid = %(table)s::regclass
                    OR c.oid IN (SELECT inhrelid FROM pg_inherits
                                  WHERE inhparent = %(table)s::regclass))
            """,
            {"table": _quoted(db_table)},
        )
        return int(cursor.fetchone()[0])


def partitions() -> list[PartitionInfo]:
    """Every partition of every partitioned table: its range, estimated rows and size."""
    result = []
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            cursor.execute(
                f"""
                SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), {_estimate_sql()},
                       pg_total_relation_size(c.oid)
                  FROM pg_inherits i
                  JOIN pg_class c ON c.oid = i.inhrelid
                  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                 WHERE i.inhparent = %s::regclass
                """,
                [table.sql_name],
            )
            for name, bound, rows, size in cursor.fetchall():
                match = _BOUND.search(bound or "")
                result.append(
                    PartitionInfo(
                        table=f"{table.schema}.{table.name}",
                        name=name,
                        is_default=bound == "DEFAULT",
                        range_start=date.fromisoformat(match[1]) if match else None,
                        range_end=date.fromisoformat(match[2]) if match else None,
                        rows_estimate=int(rows),
                        total_bytes=int(size),
                    )
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
            partition = f'"{table.schema}"."{table.default_partition}"'
            # EXISTS stops at the first row: exact and cheap whatever the size.
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {partition})")
            has_rows = cursor.fetchone()[0]
            cursor.execute(
                f"""
                SELECT {_estimate_sql()} FROM pg_class c
                  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                 WHERE c.oid = %s::regclass
                """,
                [partition],
            )
            estimate = int(cursor.fetchone()[0])
            result.append(
                DefaultPartition(
                    table=f"{table.schema}.{table.name}",
                    partition=table.default_partition,
                    has_rows=has_rows,
                    # An estimate can lag behind: never show 0 rows for a partition with rows.
                    rows_estimate=max(estimate, 1) if has_rows else 0,
                )
            )
    return result


# --- Overview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerTotal:
    layer: str
    label: str
    rows_estimate: int


def layer_totals() -> list[LayerTotal]:
    return [
        LayerTotal(Layer.EXPLORE, "explore: raw records", table_row_estimate(RAW_RECORDS.db_table)),
        LayerTotal(
            Layer.CHART, "chart: validated records", table_row_estimate(ChartRecord._meta.db_table)
        ),
        LayerTotal(
            Layer.CHART,
            "chart: quarantined records",
            table_row_estimate(QuarantinedRecord._meta.db_table),
        ),
        LayerTotal(Layer.NAVIGATE, "navigate: facts", table_row_estimate(FACTS.db_table)),
    ]


@dataclass
class DatasetTotals:
    slug: str
    name: str
    landed: int = 0
    promoted: int = 0
    quarantined: int = 0
    aggregated: int = 0


def dataset_totals() -> list[DatasetTotals]:
    """Rows per dataset and layer, from the runs' counters (all time).

    landed: lines loaded into explore; promoted / quarantined: records that reached
    chart or quarantine; aggregated: chart records taken into navigate's facts. A run
    rolled back whole (a failed 'fail' gate) has its counters at zero.
    """
    totals = {
        dataset.pk: DatasetTotals(dataset.slug, dataset.name)
        for dataset in Dataset.objects.filter(is_active=True).only("slug", "name")
    }
    rows = (
        Run.objects.filter(dataset__in=list(totals), kind__in=list(_COUNTED_KINDS))
        .values("dataset_id", "kind")
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
        elif row["kind"] == RunKind.PROMOTE_CHART:
            entry.promoted += row["promoted"] or 0
            entry.quarantined += row["quarantined"] or 0
        else:
            entry.aggregated += row["rows_in"] or 0
    return sorted(totals.values(), key=lambda t: t.slug)


_COUNTED_KINDS = (RunKind.INGEST, RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE)


@dataclass(frozen=True)
class Series:
    label: str
    data: list


@dataclass(frozen=True)
class TimeChart:
    labels: list[str]
    series: list[Series]

    def as_chart(self, *, kind: str = "line", stacked: bool = False, title: str = "") -> dict:
        """The JSON the page's chart script draws (see dashboards/js/charts.js)."""
        return {
            "type": kind,
            "title": title,
            "stacked": stacked,
            "labels": self.labels,
            "datasets": [{"label": s.label, "data": s.data} for s in self.series],
        }


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
    return _daily_chart(
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
              FROM {_quoted(Dataset._meta.db_table)} d
             CROSS JOIN LATERAL (
                   SELECT overall, created_at, run_id FROM {_quoted(QualityScore._meta.db_table)}
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


# --- Quality ----------------------------------------------------------------------------


def weights_in_force() -> list[QualityDimension]:
    return list(QualityDimension.objects.order_by("code"))


@dataclass
class ScoreTrend:
    dataset: str
    name: str
    threshold: float
    labels: list[str] = field(default_factory=list)
    overall: list[float | None] = field(default_factory=list)
    dimensions: dict[str, list[float | None]] = field(default_factory=dict)

    def as_chart(self) -> dict:
        series = [Series("overall", self.overall)] + [
            Series(code, values) for code, values in sorted(self.dimensions.items())
        ]
        chart = TimeChart(self.labels, series).as_chart(title=f"{self.name}: scores by run")
        chart["threshold"] = self.threshold
        chart["min"], chart["max"] = 0, 1
        return chart


def score_trends(*, per_dataset: int = SCORES_PER_DATASET) -> list[ScoreTrend]:
    """The last scores of each active dataset, oldest first: overall and per dimension."""
    codes = list(QualityDimension.objects.values_list("code", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT d.slug, d.name, d.quality_threshold, s.created_at, s.overall,
                   s.dimension_scores
              FROM {_quoted(Dataset._meta.db_table)} d
             CROSS JOIN LATERAL (
                   SELECT created_at, overall, dimension_scores
                     FROM {_quoted(QualityScore._meta.db_table)}
                    WHERE dataset_id = d.id ORDER BY created_at DESC LIMIT %s) s
             WHERE d.is_active
             ORDER BY d.slug, s.created_at
            """,
            [per_dataset],
        )
        rows = cursor.fetchall()
    trends: dict[str, ScoreTrend] = {}
    for slug, name, threshold, at, overall, scores_json in rows:
        # Django's psycopg setup hands jsonb to raw cursors as text.
        dimension_scores = json.loads(scores_json) if scores_json else {}
        trend = trends.get(slug)
        if trend is None:
            trend = trends[slug] = ScoreTrend(
                slug, name, float(threshold), dimensions={c: [] for c in codes}
            )
        trend.labels.append(f"{at:%Y-%m-%d %H:%M}")
        trend.overall.append(float(overall) if overall is not None else None)
        for code in codes:
            value = dimension_scores.get(code)
            trend.dimensions[code].append(float(value) if value is not None else None)
    return list(trends.values())


@dataclass(frozen=True)
class RuleStanding:
    dataset: str
    field_name: str
    kind: str
    dimension: str
    failed: int
    checked: int

    @property
    def failure_ratio(self) -> float:
        return self.failed / self.checked if self.checked else 0.0


def worst_rules(*, days: int = TREND_DAYS, limit: int = 10) -> list[RuleStanding]:
    """Active rules that failed most (by share of records) over the last `days` days."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        CheckResult.objects.filter(created_at__gte=since, rule__is_active=True)
        .values(
            "rule_id",
            dataset=F("rule__dataset__slug"),
            field_name=F("rule__field_name"),
            kind=F("rule__kind"),
            dimension=F("rule__dimension__code"),
        )
        .annotate(failed=Sum("failed_count"), passed=Sum("passed_count"))
        .filter(failed__gt=0)
    )
    standings = [
        RuleStanding(
            row["dataset"],
            row["field_name"],
            row["kind"],
            row["dimension"],
            row["failed"],
            row["failed"] + row["passed"],
        )
        for row in rows
    ]
    standings.sort(key=lambda s: (-s.failure_ratio, -s.failed))
    return standings[:limit]


# --- Compliance -------------------------------------------------------------------------


def pii_over_time(*, days: int = COMPLIANCE_DAYS, today: date | None = None) -> TimeChart:
    """PII findings per day (the day each run started) and PII type."""
    today = today or timezone.now().date()
    since = today - timedelta(days=days - 1)
    rows = (
        PiiFindingSummary.objects.filter(day__gte=since)
        .values("day", "pii_type")
        .annotate(findings=Sum("findings"))
    )
    by_type: dict[str, dict[date, int]] = defaultdict(dict)
    for row in rows:
        by_type[row["pii_type"]][row["day"]] = row["findings"]
    return _daily_chart(since, today, dict(sorted(by_type.items())))


@dataclass(frozen=True)
class PiiByField:
    dataset: str
    field_name: str
    pii_type: str
    findings: int


def pii_by_field(*, limit: int = 50) -> list[PiiByField]:
    """PII findings of all time per dataset, field and type, most first."""
    rows = (
        PiiFindingSummary.objects.values("dataset__slug", "field_name", "pii_type")
        .annotate(findings=Sum("findings"))
        .order_by("-findings", "dataset__slug", "field_name")[:limit]
    )
    return [
        PiiByField(r["dataset__slug"], r["field_name"], r["pii_type"], r["findings"]) for r in rows
    ]


def pii_by_type_chart(rows: list[PiiByField]) -> dict:
    """Findings per dataset (bars) split by PII type (stacks)."""
    datasets = sorted({r.dataset for r in rows})
    types = sorted({r.pii_type for r in rows})
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        counts[(r.dataset, r.pii_type)] += r.findings
    return TimeChart(
        datasets, [Series(t, [counts[(d, t)] for d in datasets]) for t in types]
    ).as_chart(kind="bar", stacked=True, title="PII findings by dataset and type")


@dataclass(frozen=True)
class LevelFields:
    level: str
    rank: int
    fields: list[str]


def classified_fields_by_level() -> list[LevelFields]:
    by_level: dict[int, list[str]] = defaultdict(list)
    for dataset_slug, name, level_id in (
        DatasetField.objects.filter(classification__isnull=False, dataset__is_active=True)
        .order_by("dataset__slug", "position", "name")
        .values_list("dataset__slug", "name", "classification_id")
    ):
        by_level[level_id].append(f"{dataset_slug}.{name}")
    return [
        LevelFields(level.name, level.rank, by_level.get(level.pk, []))
        for level in ClassificationLevel.objects.order_by("rank")
    ]


def open_suggestions(*, limit: int = 50) -> list[ClassificationSuggestion]:
    return list(
        ClassificationSuggestion.objects.filter(status=SuggestionStatus.OPEN)
        .select_related("dataset_field__dataset", "suggested_level")
        .order_by("-updated_at")[:limit]
    )


def quarantine_over_time(*, days: int = COMPLIANCE_DAYS, today: date | None = None) -> TimeChart:
    """Records quarantined per day, from the promotion runs' counters."""
    today = today or timezone.now().date()
    since = today - timedelta(days=days - 1)
    rows = (
        Run.objects.filter(
            kind=RunKind.PROMOTE_CHART,
            created_at__gte=datetime.combine(since, datetime.min.time(), tzinfo=UTC),
            rows_quarantined__gt=0,
        )
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", slug=F("dataset__slug"))
        .annotate(rows=Sum("rows_quarantined"))
    )
    by_dataset: dict[str, dict[date, int]] = defaultdict(dict)
    for row in rows:
        by_dataset[row["slug"]][row["day"]] = row["rows"]
    return _daily_chart(since, today, dict(sorted(by_dataset.items())))


@dataclass(frozen=True)
class ReasonCount:
    dataset: str
    field_name: str
    rule: str
    records: int


def quarantine_reasons(*, days: int = COMPLIANCE_DAYS, limit: int = 15) -> list[ReasonCount]:
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = (
        QuarantineReasonSummary.objects.filter(day__gte=since)
        .values("dataset__slug", "field_name", "rule")
        .annotate(records=Sum("records"))
        .order_by("-records", "dataset__slug", "field_name", "rule")[:limit]
    )
    return [ReasonCount(r["dataset__slug"], r["field_name"], r["rule"], r["records"]) for r in rows]


@dataclass(frozen=True)
class OpenQuarantine:
    dataset: str
    open_records: int
    capped: bool  # more than COUNT_CAP: open_records is the cap


def open_quarantine(*, cap: int = COUNT_CAP) -> list[OpenQuarantine]:
    """Open quarantined records per dataset, counted on (dataset, status) up to `cap`."""
    result = []
    with connection.cursor() as cursor:
        for dataset_id, slug in Dataset.objects.filter(is_active=True).values_list("pk", "slug"):
            cursor.execute(
                f"""
                SELECT count(*) FROM (
                    SELECT 1 FROM {_quoted(QuarantinedRecord._meta.db_table)}
                     WHERE dataset_id = %s AND status = %s LIMIT %s) capped
                """,
                [dataset_id, QuarantineStatus.OPEN, cap + 1],
            )
            count = cursor.fetchone()[0]
            if count:
                result.append(OpenQuarantine(slug, min(count, cap), count > cap))
    return result


def recent_audit(*, limit: int = 20) -> list[AuditLog]:
    """The latest audit entries. Ordered by id: every partition's primary key index starts
    with it, so this reads `limit` rows backwards instead of sorting the log by `at`."""
    return list(AuditLog.objects.order_by("-id")[:limit])


# --- Storage ----------------------------------------------------------------------------

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


# --- Lineage ----------------------------------------------------------------------------


@dataclass
class LineageNode:
    key: str  # "layer:name"
    layer: str
    name: str
    dataset: str
    classified: list[tuple[str, str | None]] = field(default_factory=list)  # (field, level)


@dataclass(frozen=True)
class LineageLink:
    source: str
    target: str
    transform: str
    # Field-level edges carrying a classified value on: "email (confidential)".
    carries: tuple[str, ...] = ()


@dataclass
class LineageGraph:
    nodes: list[LineageNode]
    links: list[LineageLink]


def lineage_graph() -> LineageGraph:
    """Datasets across explore, chart and navigate, with classifications along the way.

    Nodes: each active dataset in explore and in chart (once it reached chart), each of
    its metrics in navigate. A node lists the classified fields it holds: in explore the
    contract's levels, downstream the level each field still carries (None: removed by
    masking, encryption or aggregation) - see pipeline.selectors.field_classifications.
    """
    datasets = list(Dataset.objects.filter(is_active=True).order_by("slug"))
    edges = (
        LineageEdge.objects.filter(dataset__in=datasets, source_field="")
        .order_by("dataset_id", "source_layer", "target_name")
        .values_list("dataset_id", "source_layer", "target_layer", "target_name", "transform")
    )
    by_pk = {d.pk: d for d in datasets}
    nodes: dict[str, LineageNode] = {}
    links: list[LineageLink] = []

    def node(layer: str, name: str, dataset: Dataset) -> LineageNode:
        key = f"{layer}:{name}"
        if key not in nodes:
            nodes[key] = LineageNode(key, layer, name, dataset.slug)
        return nodes[key]

    for dataset in datasets:
        node(Layer.EXPLORE, dataset.slug, dataset)
    for dataset_id, source_layer, target_layer, target_name, transform in edges:
        dataset = by_pk[dataset_id]
        source = node(source_layer, dataset.slug, dataset)
        target_label = target_name if target_layer == Layer.NAVIGATE else dataset.slug
        target = node(target_layer, target_label or dataset.slug, dataset)
        links.append(LineageLink(source.key, target.key, transform))

    carried: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dataset in datasets:
        for item in field_classifications(dataset=dataset):
            if item.layer == Layer.NAVIGATE:
                metric, _, field_name = item.name.partition(".")
                key = f"{Layer.NAVIGATE}:{metric}"
            else:
                field_name, key = item.name, f"{item.layer}:{dataset.slug}"
            if key in nodes:
                nodes[key].classified.append((field_name, item.level))
            if item.level and item.layer != Layer.EXPLORE:
                upstream = Layer.EXPLORE if item.layer == Layer.CHART else Layer.CHART
                carried[(f"{upstream}:{dataset.slug}", key)].append(f"{field_name} ({item.level})")
    links = [
        LineageLink(
            link.source,
            link.target,
            link.transform,
            tuple(carried.get((link.source, link.target), ())),
        )
        for link in links
    ]
    return LineageGraph(list(nodes.values()), links)


# --- Counters for the overview's cards --------------------------------------------------


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
