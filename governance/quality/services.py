"""Writes of the quality area: the weights of the six dimensions, and their preview."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from governance.compliance.services import record_change, snapshot
from governance.pipeline.models import Dataset
from governance.quality.models import DimensionCode, QualityDimension, QualityScore
from governance.quality.scoring import current_weights, rescore

WEIGHT_STEP = Decimal("0.0001")  # the column keeps 4 decimal places


def validate_weights(weights: Mapping[str, Decimal]) -> None:
    """Refuse a set of weights that is incomplete, has a negative weight or misses 1.

    The one statement of the rule; the admin's weights form calls it too.
    """
    codes = set(DimensionCode.values)
    if set(weights) != codes:
        missing = ", ".join(sorted(codes - set(weights))) or "none"
        unknown = ", ".join(sorted(set(weights) - codes)) or "none"
        raise ValidationError(
            "Weights are set for all six dimensions together "
            f"(missing: {missing}; unknown: {unknown}).",
            code="incomplete",
        )
    errors = []
    for code, weight in sorted(weights.items()):
        if weight is None:
            errors.append(f"{code} has no weight.")
        elif weight < 0:
            errors.append(f"Weights cannot be negative: {code} is {weight}.")
        elif weight > 1:
            errors.append(f"A weight is at most 1: {code} is {weight}.")
        elif weight != weight.quantize(WEIGHT_STEP):
            errors.append(f"{code} has more than 4 decimal places ({weight}).")
    if errors:
        raise ValidationError(errors, code="invalid_weight")
    total = sum(weights.values(), Decimal(0))
    if total != 1:
        raise ValidationError(
            f"The weights must sum to exactly 1; they sum to {total:.4f}.",
            code="sum",
        )


@transaction.atomic
def set_weights(*, weights: Mapping[str, Decimal], actor) -> list[QualityDimension]:
    """Set all six weights in one transaction; audit each changed dimension.

    Returns the dimensions whose weight changed.
    """
    validate_weights(weights)
    dimensions = QualityDimension.objects.select_for_update().in_bulk(field_name="code")
    changed = []
    for code, weight in sorted(weights.items()):
        dimension = dimensions[code]
        if dimension.weight == weight:
            continue
        before = snapshot(dimension)
        dimension.weight = weight.quantize(WEIGHT_STEP)  # as stored, so the audit shows it so
        dimension.save(update_fields=["weight", "updated_at"])
        changed.append((dimension, before))
    # The database checks the sum at commit (a deferred trigger); check it now, so a
    # failure surfaces here rather than at whichever outer commit comes later.
    with connection.cursor() as cursor:
        cursor.execute('SET CONSTRAINTS "quality"."weights_sum_to_one" IMMEDIATE')
        cursor.execute('SET CONSTRAINTS "quality"."weights_sum_to_one" DEFERRED')
    new_set = ", ".join(f"{code}={weight}" for code, weight in sorted(weights.items()))
    for dimension, before in changed:
        record_change(
            actor=actor,
            instance=dimension,
            before=before,
            detail=f"Weights set together: {new_set}.",
        )
    return [dimension for dimension, _before in changed]


def preview_weights(*, weights: Mapping[str, Decimal]) -> list[dict[str, Any]]:
    """How each dataset's latest overall score would move under `weights`, before saving.

    Rescored (scoring.rescore, the same code a run scores with) from the latest
    QualityScore's per-dimension scores: `current` under the weights in force,
    `proposed` under `weights`. Raises ValidationError for a set `set_weights` would
    refuse. One indexed lookup per dataset, however many scores are kept.
    """
    validate_weights(weights)
    in_force = current_weights()
    latest = QualityScore.objects.filter(dataset=OuterRef("pk")).order_by("-created_at", "-id")
    datasets = (
        Dataset.objects.annotate(latest_score=Subquery(latest.values("pk")[:1]))
        .filter(latest_score__isnull=False)
        .order_by("slug")
    )
    scores = QualityScore.objects.in_bulk([dataset.latest_score for dataset in datasets])
    preview = []
    for dataset in datasets:
        score = scores[dataset.latest_score]
        current, proposed = rescore(score, in_force), rescore(score, weights)
        change = None if current is None or proposed is None else proposed - current
        threshold = dataset.quality_threshold
        preview.append(
            {
                "dataset": dataset.slug,
                "name": dataset.name,
                "run": score.run_id,
                "scored_at": score.created_at.isoformat(),
                "recorded": _text(score.overall),
                "current": _text(current),
                "proposed": _text(proposed),
                "change": _text(change),
                "threshold": _text(threshold),
                "below_now": current is not None and current < threshold,
                "below_then": proposed is not None and proposed < threshold,
            }
        )
    return preview


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.4f}"
