import pytest
from django.contrib.auth.models import Group

from governance.compliance.models import ClassificationLevel, PiiPattern
from governance.compliance.reference_data import PII_PATTERNS
from governance.compliance.regex_safety import check_pattern
from governance.compliance.roles import COMPLIANCE_OFFICER, DATA_STEWARD, VIEWER


@pytest.mark.django_db
def test_classification_levels():
    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    assert {"public", "internal", "confidential", "restricted"} <= set(levels)
    ranks = [levels[name].rank for name in ("public", "internal", "confidential", "restricted")]
    assert ranks == sorted(ranks)
    assert levels["restricted"].requires_encryption
    assert not levels["public"].requires_encryption


@pytest.mark.django_db
def test_pii_patterns_cover_the_required_types():
    types = set(PiiPattern.objects.filter(enabled=True).values_list("pii_type", flat=True))
    assert {
        "email",
        "phone",
        "us_ssn",
        "payment_card",
        "iban",
        "ipv4",
        "ipv6",
        "date_of_birth",
    } <= types


@pytest.mark.parametrize("spec", PII_PATTERNS, ids=lambda spec: spec["name"])
def test_every_shipped_pattern_is_safe(spec):
    check_pattern(spec["regex"])


@pytest.mark.django_db
def test_roles_hold_sensible_permissions():
    def codenames(role):
        return set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))

    viewer, steward, officer = (
        codenames(VIEWER),
        codenames(DATA_STEWARD),
        codenames(COMPLIANCE_OFFICER),
    )
    # A viewer reads, and keeps only their own alert subscriptions.
    own = {"add_alertsubscription", "change_alertsubscription", "delete_alertsubscription"}
    assert own <= viewer
    assert viewer and all(codename.startswith("view_") for codename in viewer - own)
    assert "view_dataset" in viewer
    assert "view_auditlog" not in viewer
    assert {"change_dataset", "change_qualityrule", "change_qualitydimension"} <= steward
    assert "change_piipattern" not in steward
    assert "change_classificationlevel" not in steward
    assert {"change_piipattern", "add_piipattern", "change_classificationlevel"} <= officer
    assert "view_auditlog" in officer
