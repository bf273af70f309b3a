"""Reads of the pipeline area: which datasets are due, classifications along lineage,
what a dataset's page and a run's page show."""

from dataclasses import dataclass
from datetime import datetime

from celery.schedules import crontab
from django.db.models import Q

from governance.compliance.clearance import Clearance
from governance.compliance.protection import DatasetShield
from governance.pipeline.models import (
    VALUE_REMOVING_TRANSFORMS,
    Dataset,
    DatasetField,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    chart_transform,
)

SCHEDULE_TRIGGER = "schedule"


def schedule_of(dataset: Dataset) -> crontab | None:
    if not dataset.schedule:
        return None
    minute, hour, day_of_month, month_of_year, day_of_week = dataset.schedule.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def last_scheduled_run_at(dataset: Dataset) -> datetime | None:
    return (
        Run.objects.filter(
            dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by=SCHEDULE_TRIGGER
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def due_datasets(*, now: datetime) -> list[Dataset]:
    """Active datasets whose cron schedule has fired since their last scheduled run."""
    due = []
    for dataset in Dataset.objects.filter(is_active=True).exclude(schedule=""):
        schedule = schedule_of(dataset)
        if schedule is None:
            continue
        last = last_scheduled_run_at(dataset) or dataset.created_at
        # remaining_delta: the next firing is last_run_at + delta; due once `now` reaches it.
        last_run_at, delta, _ = schedule.remaining_delta(last)
        if now >= last_run_at + delta:
            due.append(dataset)
    return due


@dataclass(frozen=True)
class LayerClassification:
    """A field's classification in one layer, and where it comes from."""

    layer: str
    name: str  # the field, or "metric.field" in navigate
    level: str | None  # None: the value does not reach this layer as such
    source: str  # "contract", or the upstream field and the transform it came through


def field_classifications(*, dataset: Dataset) -> list[LayerClassification]:
    """Classifications along the dataset's lineage, explore → chart → navigate.

    The contract classifies the raw value in explore. A classification propagates down
    an edge unless the edge's transform removes the value (masked, encrypted,
    aggregated). Into chart, the transform is the one the field's level calls for now
    (chart_transform), so a change of level shows at once, not after the next run (which
    re-protects the stored values); further down, the latest edge of each field says.
    """
    classified = DatasetField.objects.filter(
        dataset=dataset, classification__isnull=False
    ).values_list("name", "classification__name", "classification__requires_encryption")
    levels: dict[str, str] = {name: level for name, level, _ in classified}
    encrypted = {name for name, _, requires_encryption in classified if requires_encryption}
    result = [
        LayerClassification(Layer.EXPLORE, name, level, "contract")
        for name, level in levels.items()
    ]
    latest: dict[tuple[str, str, str], LineageEdge] = {}
    for edge in (
        LineageEdge.objects.filter(dataset=dataset)
        .exclude(source_field="")
        .order_by("last_seen_at", "pk")
    ):
        latest[(edge.source_layer, edge.source_field, edge.target_name)] = edge
    chart_levels: dict[str, str | None] = {}
    for (layer, field_name, _), _edge in sorted(latest.items()):
        if layer != Layer.EXPLORE or field_name not in levels:
            continue
        transform = chart_transform(requires_encryption=field_name in encrypted)
        kept = transform not in VALUE_REMOVING_TRANSFORMS
        chart_levels[field_name] = levels[field_name] if kept else None
        result.append(
            LayerClassification(
                Layer.CHART,
                field_name,
                chart_levels[field_name],
                f"explore.{field_name} via {transform}",
            )
        )
    for (layer, field_name, target), edge in sorted(latest.items()):
        if layer != Layer.CHART or not chart_levels.get(field_name):
            continue
        kept = edge.transform not in VALUE_REMOVING_TRANSFORMS
        result.append(
            LayerClassification(
                Layer.NAVIGATE,
                f"{target}.{field_name}",
                chart_levels[field_name] if kept else None,
                f"chart.{field_name} via {edge.transform}",
            )
        )
    return result


# --- A dataset's page and a run's page (bounded reads) -------------------------------

RECENT_RUNS = 10
LINEAGE_EDGES = 200


def recent_runs(*, dataset: Dataset, limit: int = RECENT_RUNS) -> list[Run]:
    return list(Run.objects.filter(dataset=dataset).order_by("-created_at", "-id")[:limit])


@dataclass(frozen=True)
class DatasetLineage:
    upstream: list[LineageEdge]  # into chart, from explore
    downstream: list[LineageEdge]  # out of chart, into navigate


def dataset_lineage(*, dataset: Dataset, limit: int = LINEAGE_EDGES) -> DatasetLineage:
    edges = list(
        LineageEdge.objects.filter(dataset=dataset).order_by(
            "source_layer", "target_layer", "target_name", "source_field"
        )[:limit]
    )
    return DatasetLineage(
        upstream=[e for e in edges if e.target_layer == Layer.CHART],
        downstream=[e for e in edges if e.source_layer == Layer.CHART],
    )


def contract(*, dataset: Dataset) -> list[DatasetField]:
    """The dataset's contract fields, in their order."""
    return list(DatasetField.objects.filter(dataset=dataset).order_by("position", "name"))


def current_lineage(*, dataset: Dataset) -> list[LineageEdge]:
    """The dataset's field-level edges as they stand now.

    A field whose protection changed gets a new edge and keeps the old one as history;
    of each field's edges into a target, the one seen last is the current one.
    """
    key = ("source_layer", "source_field", "target_layer", "target_name")
    return list(
        LineageEdge.objects.filter(dataset=dataset)
        .exclude(source_field="")
        .order_by(*key, "-last_seen_at", "-pk")
        .distinct(*key)
    )


def failed_promotion(*, dataset: Dataset) -> Run | None:
    """The dataset's latest promotion run, when it failed (a new one would retry it)."""
    latest = (
        Run.objects.filter(
            dataset=dataset, kind__in=[RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE]
        )
        .order_by("-created_at", "-id")
        .first()
    )
    return latest if latest is not None and latest.status == RunStatus.FAILED else None


# --- Values as one reader may see them ------------------------------------------------


def field_levels(*, dataset_id: int) -> dict[str, int | None]:
    """Each contract field's classification level id (None: unclassified)."""
    return dict(
        DatasetField.objects.filter(dataset_id=dataset_id).values_list("name", "classification_id")
    )


class DatasetShields:
    """One reader's shield of each dataset, built on first use: for pages and exports
    whose rows span datasets."""

    def __init__(self, clearance: Clearance):
        self.clearance = clearance
        self._shields: dict[int, DatasetShield] = {}

    def __call__(self, dataset_id: int) -> DatasetShield:
        shield = self._shields.get(dataset_id)
        if shield is None:
            shield = self._shields[dataset_id] = DatasetShield(
                self.clearance,
                dataset_id=dataset_id,
                field_levels=field_levels(dataset_id=dataset_id),
            )
        return shield


def dataset_shields(user) -> DatasetShields:
    return DatasetShields(Clearance.for_user(user))


def readable_dataset_ids(user) -> set[int] | None:
    """The datasets whose records the user may read; None: every dataset.

    A dataset that names reader groups is read by their members and its owner only;
    superusers read everything. Everyone sees that a dataset exists.
    """
    if getattr(user, "is_superuser", False):
        return None
    if not Dataset.reader_groups.through.objects.exists():
        return None  # no dataset is limited: nothing to filter
    if not getattr(user, "is_authenticated", False):
        return set()
    readable = Dataset.objects.filter(
        Q(reader_groups__isnull=True) | Q(reader_groups__in=user.groups.all()) | Q(owner=user)
    )
    return set(readable.values_list("pk", flat=True))
