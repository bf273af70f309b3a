"""Whether a rule's condition holds, per dataset or for the platform, and its summary:
names and counts only, never a record's value."""

from dataclasses import dataclass
from datetime import datetime

from governance.pipeline.models import (
    PLATFORM_ALERT_KINDS,
    AlertKind,
    AlertRule,
)
from orchestration.alerts.figures import DEFAULT_ROWS_COUNTED, DatasetFigures, PlatformFigures


@dataclass(frozen=True)
class Condition:
    dataset_id: int | None
    summary: str


def _dataset_condition(rule: AlertRule, f: DatasetFigures, now: datetime) -> str | None:
    """The summary when the rule's condition holds for the dataset, else None."""
    if rule.kind == AlertKind.RUN_FAILED:
        kinds = [k for k in f.failed_kinds if not rule.run_kind or k == rule.run_kind]
        if kinds:
            return f"{f.slug}: latest {', '.join(kinds)} run failed"
    elif rule.kind == AlertKind.STALE:
        if f.freshness_lag is not None and f.freshness_lag > f.freshness_target:
            hours = f.freshness_lag / 3600
            target = f.freshness_target / 3600
            return f"{f.slug}: last load or promotion {hours:.1f} h ago (target {target:.1f} h)"
    elif rule.kind == AlertKind.QUALITY_BELOW:
        if f.score_below:
            return f"{f.slug}: latest quality score below the dataset's threshold"
        if (
            rule.drop_points is not None
            and f.score_drop is not None
            and f.score_drop > float(rule.drop_points)
        ):
            return (
                f"{f.slug}: latest quality score fell {f.score_drop:.1f} points "
                f"(more than {float(rule.drop_points):g})"
            )
    elif (
        rule.kind == AlertKind.QUARANTINE_SHARE
        and rule.threshold_percent is not None
        and f.chart_run_in
        and f.chart_run_quarantined is not None
    ):
        share = 100 * f.chart_run_quarantined / f.chart_run_in
        if share > float(rule.threshold_percent):
            return (
                f"{f.slug}: last chart run quarantined {f.chart_run_quarantined} of "
                f"{f.chart_run_in} records ({share:.1f}% > {rule.threshold_percent}%)"
            )
    elif (
        rule.kind == AlertKind.SUGGESTION_WAITING
        and rule.wait_days is not None
        and f.oldest_suggestion_at is not None
    ):
        days = (now - f.oldest_suggestion_at).total_seconds() / 86400
        if days > rule.wait_days:
            return (
                f"{f.slug}: a PII classification suggestion has waited {days:.0f} days "
                f"(more than {rule.wait_days})"
            )
    return None


def _silence(component: str, silent_for: float | None, minutes: int) -> str | None:
    if silent_for is None:
        return f"no {component} has ever been seen"
    if silent_for > minutes * 60:
        return f"no {component} seen for {silent_for / 60:.0f} min (more than {minutes})"
    return None


def _platform_condition(rule: AlertRule, p: PlatformFigures) -> str | None:
    if rule.kind == AlertKind.DEAD_LETTERS:
        return f"{p.dead_letters} dead letter(s) set aside" if p.dead_letters else None
    if rule.kind == AlertKind.DEFAULT_PARTITION_ROWS:
        if not p.default_rows:
            return None
        parts = ", ".join(
            f"{name}: {'at least ' if n >= DEFAULT_ROWS_COUNTED else ''}{n} rows"
            for name, n in sorted(p.default_rows.items())
        )
        return f"rows in DEFAULT partitions (a partition is missing): {parts}"
    if rule.kind == AlertKind.WORKER_SILENT and rule.silent_minutes is not None:
        return _silence("worker", p.worker_silent_for, rule.silent_minutes)
    if rule.kind == AlertKind.BEAT_SILENT and rule.silent_minutes is not None:
        return _silence("scheduler (beat)", p.beat_silent_for, rule.silent_minutes)
    return None


def conditions(
    rule: AlertRule, figures: list[DatasetFigures], platform: PlatformFigures, now: datetime
) -> dict[int | None, Condition]:
    """Dataset id (None: platform-wide) -> the condition holding for the rule."""
    if rule.kind in PLATFORM_ALERT_KINDS:
        summary = _platform_condition(rule, platform)
        return {None: Condition(None, summary)} if summary is not None else {}
    held: dict[int | None, Condition] = {}
    for f in figures:
        if rule.dataset_id is not None and f.id != rule.dataset_id:
            continue
        summary = _dataset_condition(rule, f, now)
        if summary is not None:
            held[f.id] = Condition(f.id, summary)
    return held
