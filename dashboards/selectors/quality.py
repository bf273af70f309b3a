"""The quality page: weights in force, score trends, the rules failing most."""

import json
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from atlas_site.schemas import sql_table
from dashboards.selectors.charts import TREND_DAYS, Series, TimeChart
from governance.pipeline.models import Dataset
from governance.quality.models import CheckResult, QualityDimension, QualityScore

# Scores drawn per dataset on the quality page.
SCORES_PER_DATASET = 30
# Fewer scored runs than this are drawn as bars, not a line.
LINE_FROM_RUNS = 3


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
        # A line through one or two runs is a dot or a stroke: bars read at any count.
        kind = "line" if len(self.labels) >= LINE_FROM_RUNS else "bar"
        chart = TimeChart(self.labels, series).as_chart(
            kind=kind, title=f"{self.name}: scores by run"
        )
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
              FROM {sql_table(Dataset)} d
             CROSS JOIN LATERAL (
                   SELECT created_at, overall, dimension_scores
                     FROM {sql_table(QualityScore)}
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
