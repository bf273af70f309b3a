"""Reads of the pipeline area: which datasets are due, how runs stand."""

from datetime import datetime

from celery.schedules import crontab

from governance.pipeline.models import Dataset, Run, RunKind

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
