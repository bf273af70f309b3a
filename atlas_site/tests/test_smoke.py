import pytest

from governance.quality.models import QualityDimension


@pytest.mark.django_db
def test_reference_data_present():
    assert QualityDimension.objects.count() == 6
