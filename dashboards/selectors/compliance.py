"""The compliance page: PII findings, classified fields, quarantine, the audit log."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.db.models import F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from atlas_site.schemas import sql_table
from chart.models import QuarantinedRecord, QuarantineStatus
from dashboards.models import PiiFindingSummary, QuarantineReasonSummary
from dashboards.selectors.charts import COMPLIANCE_DAYS, Series, TimeChart, daily_chart
from governance.compliance.models import (
    AuditLog,
    ClassificationLevel,
    ClassificationSuggestion,
    SuggestionStatus,
)
from governance.pipeline.models import Dataset, DatasetField, Run, RunKind

# Exact counts stop here; the page then shows "10,000+".
COUNT_CAP = 10_000


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
    return daily_chart(since, today, dict(sorted(by_type.items())))


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
    return daily_chart(since, today, dict(sorted(by_dataset.items())))


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
                    SELECT 1 FROM {sql_table(QuarantinedRecord)}
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
