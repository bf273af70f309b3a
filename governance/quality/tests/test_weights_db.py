"""The database itself refuses weights that do not sum to 1 (deferred constraint trigger)."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from governance.quality.models import QualityDimension


def _check_now():
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db
def test_shipped_weights_sum_to_one():
    weights = list(QualityDimension.objects.values_list("weight", flat=True))
    assert len(weights) == 6
    assert sum(weights) == Decimal(1)
    assert {d.code for d in QualityDimension.objects.all()} == {
        "completeness",
        "accuracy",
        "consistency",
        "timeliness",
        "validity",
        "uniqueness",
    }


@pytest.mark.django_db
def test_a_commit_that_breaks_the_sum_is_refused():
    with pytest.raises(IntegrityError, match="must sum to 1"), transaction.atomic():
        QualityDimension.objects.filter(code="timeliness").update(weight=Decimal("0.5"))
        _check_now()


@pytest.mark.django_db
def test_moving_weight_between_dimensions_in_one_transaction_is_accepted():
    with transaction.atomic():
        QualityDimension.objects.filter(code="timeliness").update(weight=Decimal("0.05"))
        QualityDimension.objects.filter(code="uniqueness").update(weight=Decimal("0.15"))
        _check_now()
    assert QualityDimension.objects.get(code="uniqueness").weight == Decimal("0.15")


@pytest.mark.django_db
def test_negative_weight_is_refused():
    with pytest.raises(IntegrityError, match="dimension_weight_0_1"), transaction.atomic():
        QualityDimension.objects.filter(code="timeliness").update(weight=Decimal("-0.1"))
