"""Reads of the quality area for pages: a dataset's score trend, what a run's checks found."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from governance.pipeline.models import Dataset, Run, RunStep
from governance.quality.models import CheckResult, QualityScore

SCORE_POINTS = 20


@dataclass(frozen=True)
class ScorePoint:
    run_id: int
    at: datetime
    overall: Decimal | None
    dimensions: dict[str, Decimal | None]


def score_trend(*, dataset: Dataset, limit: int = SCORE_POINTS) -> list[ScorePoint]:
    """The dataset's latest quality scores, oldest first (the score_dataset_idx index)."""
    scores = QualityScore.objects.filter(dataset=dataset).order_by("-created_at")[:limit]
    return [
        ScorePoint(
            run_id=score.run_id,
            at=score.created_at,
            overall=score.overall,
            dimensions={
                code: None if value is None else Decimal(value)
                for code, value in score.dimension_scores.items()
            },
        )
        for score in reversed(list(scores))
    ]


@dataclass(frozen=True)
class StepTiming:
    step: RunStep
    duration: timedelta | None


@dataclass(frozen=True)
class RunOverview:
    waited: timedelta | None  # queued before it started
    duration: timedelta | None
    steps: list[StepTiming]
    failed_checks: list  # CheckResult with failures, most failures first
    checks_total: int


def run_overview(*, run: Run, checks: int = 50) -> RunOverview:
    results = CheckResult.objects.filter(run=run)
    return RunOverview(
        waited=run.started_at - run.created_at if run.started_at else None,
        duration=run.duration,
        steps=[
            StepTiming(step, step.finished_at - step.started_at if step.finished_at else None)
            for step in RunStep.objects.filter(run=run).order_by("started_at", "id")
        ],
        failed_checks=list(
            results.filter(failed_count__gt=0)
            .select_related("rule__dimension")
            .order_by("-failed_count", "rule_id")[:checks]
        ),
        checks_total=results.count(),
    )


@dataclass(frozen=True)
class RunQuality:
    results: list[CheckResult]  # every rule's tally in the run, with its rule
    score: QualityScore | None


def run_quality(*, run: Run) -> RunQuality:
    """What a run's rules found (counts only) and its score; nothing when it judged nothing."""
    return RunQuality(
        results=list(
            CheckResult.objects.filter(run=run)
            .select_related("rule__dimension")
            .order_by("rule__field_name", "rule__kind", "rule_id")
        ),
        score=QualityScore.objects.filter(run=run).first(),
    )
