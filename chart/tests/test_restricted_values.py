import base64
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import override_settings

from chart.models import ChartRecord
from chart.services import RevealRefusedError, promote_to_chart, reveal_value
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction, AuditLog

GOOD = {"id": "1", "ssn": "123-45-6789", "email": "ada@example.com"}


@pytest.fixture
def record(customers, land):
    land(customers, [GOOD])
    promote_to_chart(dataset=customers, triggered_by="test")
    return ChartRecord.objects.get(dataset=customers)


def test_reveal_needs_its_own_permission_and_is_audited(record, steward, officer):
    with pytest.raises(RevealRefusedError):
        reveal_value(record=record, field_name="ssn", actor=steward)
    assert reveal_value(record=record, field_name="ssn", actor=officer) == "123-45-6789"
    entries = AuditLog.objects.filter(
        object_type="chart.chartrecord", object_id=str(record.pk), action=AuditAction.REVEAL
    )
    assert {(e.actor, e.detail) for e in entries} == {
        ("steward", "refused: no permission to reveal ssn"),
        ("officer", "revealed ssn"),
    }


def test_reveal_of_a_value_that_is_not_encrypted_is_refused(record, superuser):
    with pytest.raises(ValueError, match="not an encrypted value"):
        reveal_value(record=record, field_name="email", actor=superuser)


def test_key_rotation_reencrypts_under_the_new_key(record, settings):
    old_spec = settings.ATLAS_ENCRYPTION_KEYS
    new_key = base64.b64encode(b"N" * 32).decode()
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"new:{new_key},{old_spec}"):
        out = StringIO()
        call_command("reencrypt", stdout=out)
        assert "Re-encrypted 1 values in 1 chart records under key 'new'" in out.getvalue()
        record.refresh_from_db()
        assert record.data["ssn"].startswith("enc:v1:new:")
        keyring = Keyring.from_settings()
        assert keyring.decrypt(record.data["ssn"], context=f"{record.dataset_id}:ssn") == (
            "123-45-6789"
        )
        call_command("reencrypt", stdout=out)
        assert "Re-encrypted 0 values" in out.getvalue()
    # With only the new key left, the value still decrypts.
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"new:{new_key}"):
        keyring = Keyring.from_settings()
        assert keyring.decrypt(record.data["ssn"], context=f"{record.dataset_id}:ssn")


@pytest.mark.django_db
def test_reveal_permission_exists():
    assert Permission.objects.filter(codename="reveal_restricted").exists()
