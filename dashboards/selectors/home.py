"""The home page: a card per dataset that tells its state, and a search over the catalog.

Cheap on thousands of datasets: the cards are one query for at most CARDS datasets, each
fact read by an index probe (the last run of each kind, the latest score, the open
quarantine counted up to COUNT_CAP, the most sensitive level of its fields); the search
matches names with ILIKE and returns at most SEARCH_LIMIT of each kind.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q

from atlas_site.schemas import sql_table
from chart.models import QuarantinedRecord, QuarantineStatus
from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import (
    FRESHNESS_KINDS,
    Dataset,
    DatasetField,
    Run,
    RunKind,
    RunStatus,
)
from governance.quality.models import QualityScore
from navigate.models import MetricDefinition

CARDS = 48
COUNT_CAP = 10_000
SEARCH_LIMIT = 20


@dataclass(frozen=True)
class DatasetCard:
    id: int
    slug: str
    name: str
    owner: str | None
    last_run_id: int | None
    last_run_kind: str | None
    last_run_status: str | None
    last_run_at: datetime | None
    score: float | None
    threshold: float
    open_quarantine: int
    open_quarantine_capped: bool
    level: str | None
    freshness_target: timedelta
    last_success_at: datetime | None

    @property
    def failing(self) -> bool:
        return self.last_run_status == RunStatus.FAILED

    @property
    def below_threshold(self) -> bool:
        return self.score is not None and self.score < self.threshold

    def stale(self, now: datetime) -> bool:
        """Nothing loaded or promoted within its freshness target (or ever)."""
        return self.last_success_at is None or now - self.last_success_at > self.freshness_target

    @property
    def last_run_kind_label(self) -> str:
        return RunKind(self.last_run_kind).label if self.last_run_kind else ""

    @property
    def last_run_status_label(self) -> str:
        return RunStatus(self.last_run_status).label if self.last_run_status else ""


def _last_run_of(kind: str, alias: str, *, succeeded: bool = False) -> str:
    """A LATERAL probe of run_dataset_kind_idx: the dataset's newest run of one kind."""
    status = f"AND status = '{RunStatus.SUCCEEDED}'" if succeeded else ""
    return f"""
        LEFT JOIN LATERAL (
            SELECT id, kind, status, created_at FROM {sql_table(Run)}
             WHERE dataset_id = d.id AND kind = '{kind}' {status}
             ORDER BY created_at DESC LIMIT 1) {alias} ON true"""


def dataset_cards(
    *, dataset_ids: list[int] | None = None, limit: int | None = CARDS, active_only: bool = True
) -> list[DatasetCard]:
    """The datasets' cards (those of `dataset_ids` only, when given), by slug; `limit`
    None: all of them."""
    kinds = (RunKind.INGEST, RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE)
    last_runs = "".join(_last_run_of(kind, f"r{n}") for n, kind in enumerate(kinds))
    successes = "".join(
        _last_run_of(kind, f"s{n}", succeeded=True) for n, kind in enumerate(FRESHNESS_KINDS)
    )
    # The newest of the three last runs: a row constructor compared by created_at.
    newest = " ".join(
        f"WHEN r{n}.created_at IS NOT NULL AND r{n}.created_at = greatest("
        + ", ".join(f"r{m}.created_at" for m in range(len(kinds)))
        + f") THEN r{n}.{{column}}"
        for n in range(len(kinds))
    )
    filter_ids = "AND d.id = ANY(%(ids)s)" if dataset_ids is not None else ""
    sql = f"""
        SELECT d.id, d.slug, d.name, u.username, d.quality_threshold, d.freshness_target,
               CASE {newest.format(column="id")} END,
               CASE {newest.format(column="kind")} END,
               CASE {newest.format(column="status")} END,
               greatest({", ".join(f"r{n}.created_at" for n in range(len(kinds)))}),
               greatest({", ".join(f"s{n}.created_at" for n in range(len(FRESHNESS_KINDS)))}),
               score.overall,
               (SELECT count(*) FROM (
                    SELECT 1 FROM {sql_table(QuarantinedRecord)} q
                     WHERE q.dataset_id = d.id AND q.status = %(open)s LIMIT %(cap)s) capped),
               (SELECT l.name FROM {sql_table(DatasetField)} f
                  JOIN {sql_table(ClassificationLevel)} l ON l.id = f.classification_id
                 WHERE f.dataset_id = d.id ORDER BY l.rank DESC LIMIT 1)
          FROM {sql_table(Dataset)} d
          LEFT JOIN {sql_table(get_user_model())} u ON u.id = d.owner_id
          {last_runs}
          {successes}
          LEFT JOIN LATERAL (
              SELECT overall FROM {sql_table(QualityScore)}
               WHERE dataset_id = d.id ORDER BY created_at DESC LIMIT 1) score ON true
         WHERE {"d.is_active" if active_only else "true"} {filter_ids}
         ORDER BY d.slug
         LIMIT %(limit)s
    """
    params: dict[str, Any] = {
        "open": QuarantineStatus.OPEN,
        "cap": COUNT_CAP + 1,
        "limit": limit,  # None: LIMIT NULL, no limit
        "ids": dataset_ids or [],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        DatasetCard(
            id=row[0],
            slug=row[1],
            name=row[2],
            owner=row[3],
            threshold=float(row[4]),
            freshness_target=row[5],
            last_run_id=row[6],
            last_run_kind=row[7],
            last_run_status=row[8],
            last_run_at=row[9],
            last_success_at=row[10],
            score=float(row[11]) if row[11] is not None else None,
            open_quarantine=min(row[12], COUNT_CAP),
            open_quarantine_capped=row[12] > COUNT_CAP,
            level=row[13],
        )
        for row in rows
    ]


# The states the admin's dataset list filters by, each a question a card answers.
STATES = {
    "failing": "last run failed",
    "below_threshold": "below its quality threshold",
    "stale": "stale (past its freshness target)",
    "quarantine": "with open quarantine",
}


def in_state(card: DatasetCard, state: str, now: datetime) -> bool:
    if state == "failing":
        return card.failing
    if state == "below_threshold":
        return card.below_threshold
    if state == "stale":
        return card.stale(now)
    if state == "quarantine":
        return card.open_quarantine > 0
    raise ValueError(f"unknown dataset state {state!r} (known: {', '.join(STATES)})")


def dataset_ids_in_state(state: str, now: datetime) -> list[int]:
    """Every dataset (active or not) in `state`: its card read for all of them, index
    probes only, so thousands of datasets cost a fraction of a second."""
    return [
        card.id
        for card in dataset_cards(limit=None, active_only=False)
        if in_state(card, state, now)
    ]


def active_dataset_count() -> int:
    return Dataset.objects.filter(is_active=True).count()


@dataclass(frozen=True)
class SearchResults:
    query: str
    datasets: list[Dataset]
    fields: list[DatasetField]
    metrics: list[MetricDefinition]

    @property
    def empty(self) -> bool:
        return not (self.datasets or self.fields or self.metrics)


def search_catalog(query: str, *, limit: int = SEARCH_LIMIT) -> SearchResults:
    """Datasets, contract fields and metrics whose name (or slug, or description) holds
    `query`, at most `limit` of each."""
    query = query.strip()
    datasets = list(
        Dataset.objects.filter(
            Q(slug__icontains=query) | Q(name__icontains=query) | Q(description__icontains=query)
        ).order_by("slug")[:limit]
    )
    fields = list(
        DatasetField.objects.filter(Q(name__icontains=query) | Q(description__icontains=query))
        .select_related("dataset", "classification")
        .order_by("dataset__slug", "position", "name")[:limit]
    )
    metrics = list(
        MetricDefinition.objects.filter(Q(slug__icontains=query) | Q(name__icontains=query))
        .select_related("dataset")
        .order_by("slug")[:limit]
    )
    return SearchResults(query, datasets, fields, metrics)
