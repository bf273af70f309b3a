"""Scores: a dimension's score is passed/total over its rules; the overall score is the
weighted mean over the dimensions that measured something, their weights rescaled to
sum to 1. Every score keeps the weights it used."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import transaction

from governance.pipeline.models import Dataset, Run
from governance.quality.models import CheckResult, QualityDimension, QualityRule, QualityScore

FOUR_PLACES = Decimal("0.0001")


@dataclass
class RuleTally:
    rule: QualityRule
    passed: int = 0
    failed: int = 0
    examples: list | None = None

    def add_example(self, example: dict, limit: int = 5) -> None:
        if self.examples is None:
            self.examples = []
        if len(self.examples) < limit:
            self.examples.append(example)


def dimension_scores(tallies: Iterable[RuleTally]) -> dict[str, Decimal | None]:
    passed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for tally in tallies:
        code = tally.rule.dimension.code
        passed[code] += tally.passed
        total[code] += tally.passed + tally.failed
    return {
        code: (Decimal(passed[code]) / Decimal(total[code])).quantize(FOUR_PLACES)
        if total.get(code)
        else None
        for code in _all_codes()
    }


def overall_score(
    scores: Mapping[str, Decimal | None], weights: Mapping[str, Decimal]
) -> Decimal | None:
    measured = {code: score for code, score in scores.items() if score is not None}
    weight_sum = sum((weights[code] for code in measured), Decimal(0))
    if not measured or weight_sum == 0:
        return None
    weighted = sum((score * weights[code] for code, score in measured.items()), Decimal(0))
    return (weighted / weight_sum).quantize(FOUR_PLACES, rounding=ROUND_HALF_EVEN)


def current_weights() -> dict[str, Decimal]:
    return dict(QualityDimension.objects.values_list("code", "weight"))


def _all_codes() -> list[str]:
    return list(QualityDimension.objects.values_list("code", flat=True))


@transaction.atomic
def record_scores(*, run: Run, dataset: Dataset, tallies: list[RuleTally]) -> QualityScore:
    """Store each rule's result and the run's scores with the weights in force now."""
    CheckResult.objects.bulk_create(
        [
            CheckResult(
                run=run,
                rule=tally.rule,
                passed_count=tally.passed,
                failed_count=tally.failed,
                failing_examples=tally.examples or [],
            )
            for tally in tallies
        ],
        update_conflicts=True,
        unique_fields=["run", "rule"],
        update_fields=["passed_count", "failed_count", "failing_examples"],
    )
    weights = current_weights()
    scores = dimension_scores(tallies)
    overall = overall_score(scores, weights)
    score, _ = QualityScore.objects.update_or_create(
        run=run,
        defaults={
            "dataset": dataset,
            "overall": overall,
            "dimension_scores": {code: _text(value) for code, value in scores.items()},
            "weights_used": {code: str(weight) for code, weight in weights.items()},
            "below_threshold": overall is not None and overall < dataset.quality_threshold,
        },
    )
    return score


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def rescore(score: QualityScore, weights: Mapping[str, Decimal]) -> Decimal | None:
    """What a stored score would be under other weights (for the weights preview)."""
    scores = {
        code: None if value is None else Decimal(value)
        for code, value in score.dimension_scores.items()
    }
    return overall_score(scores, weights)
