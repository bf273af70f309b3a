"""Reads of the pipeline area: which datasets are due, classifications along lineage."""

from dataclasses import dataclass
from datetime import datetime

from celery.schedules import crontab

from governance.pipeline.models import (
    VALUE_REMOVING_TRANSFORMS,
    Dataset,
    DatasetField,
    Layer,
    LineageEdge,
    Run,
    RunKind,
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
    aggregated); the latest edge of each field says which transform applies now.
    """
    levels = {
        field.name: field.classification.name
        for field in DatasetField.objects.filter(
            dataset=dataset, classification__isnull=False
        ).select_related("classification")
    }
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
    for (layer, field_name, _), edge in sorted(latest.items()):
        if layer != Layer.EXPLORE or field_name not in levels:
            continue
        kept = edge.transform not in VALUE_REMOVING_TRANSFORMS
        chart_levels[field_name] = levels[field_name] if kept else None
        result.append(
            LayerClassification(
                Layer.CHART,
                field_name,
                chart_levels[field_name],
                f"explore.{field_name} via {edge.transform}",
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
