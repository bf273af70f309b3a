"""Migrations that retune shipped PII patterns change only what is still as shipped."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from governance.compliance.models import PiiPattern

pytestmark = pytest.mark.django_db

retune = importlib.import_module(
    "governance.compliance.migrations.0013_ssn_with_spaces_nir_over_cards_vat_lowercase"
)


def test_patterns_as_shipped_before_are_retuned_and_back():
    ssn = PiiPattern.objects.get(name=retune.SSN)
    nir = PiiPattern.objects.get(name=retune.NIR)
    vat = PiiPattern.objects.get(name=retune.VAT)
    # The database as the previous release left it.
    ssn.regex = retune.SSN_OLD
    ssn.save()
    nir.confidence = retune.NIR_OLD
    nir.save()
    vat.regex = vat.regex.replace(retune.VAT_SPAIN_NEW, retune.VAT_SPAIN_OLD)
    vat.save()
    new_vat = vat.regex.replace(retune.VAT_SPAIN_OLD, retune.VAT_SPAIN_NEW)

    retune.forwards(apps, None)
    for pattern in (ssn, nir, vat):
        pattern.refresh_from_db()
    assert (ssn.regex, nir.confidence, vat.regex) == (retune.SSN_NEW, Decimal("0.95"), new_vat)

    retune.backwards(apps, None)
    for pattern in (ssn, nir, vat):
        pattern.refresh_from_db()
    assert ssn.regex == retune.SSN_OLD
    assert nir.confidence == retune.NIR_OLD
    assert retune.VAT_SPAIN_OLD in vat.regex


def test_a_stewards_own_edit_stands():
    ssn = PiiPattern.objects.get(name=retune.SSN)
    ssn.regex = r"\bSSN \d{9}\b"
    ssn.save()
    nir = PiiPattern.objects.get(name=retune.NIR)
    nir.confidence = Decimal("0.70")
    nir.save()

    retune.forwards(apps, None)
    ssn.refresh_from_db()
    nir.refresh_from_db()
    assert ssn.regex == r"\bSSN \d{9}\b"
    assert nir.confidence == Decimal("0.70")
