"""Writes of the quality area: the weights of the six dimensions."""

from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from governance.compliance.services import record_change, snapshot
from governance.quality.models import DimensionCode, QualityDimension

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
