"""Protected values of chart read back: reveals with clearance and a reason, key rotation."""

import base64
from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.test import override_settings

from chart.models import ChartRecord
from chart.protected import EXTRA, ORIGINAL, VALUE, protected_parts, reveal_chart_value
from chart.services import promote_to_chart
from governance.compliance.clearance import clearance_codename
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction, AuditLog, ClassificationLevel
from governance.compliance.reveal import RevealRefusedError
from governance.compliance.roles import COMPLIANCE_OFFICER
from governance.compliance.tokens import TokenKeyring

GOOD = {"id": "1", "ssn": "123-45-6789", "email": "ada@example.com"}


@pytest.fixture(autouse=True)
def _fresh_reveal_counts():
    # Counts live in Redis for an hour; user ids repeat from one test database to the next.
    cache.delete_pattern("atlas:reveals:*")


@pytest.fixture
def record(customers, land):
    land(customers, [GOOD])
    promote_to_chart(dataset=customers, triggered_by="test")
    return ChartRecord.objects.get(dataset=customers)


def clear(group_name: str, level_name: str) -> None:
    level = ClassificationLevel.objects.get(name=level_name)
    Group.objects.get(name=group_name).permissions.add(
        Permission.objects.get(codename=clearance_codename(level.pk))
    )


def reveals_of(record) -> list[tuple[str, str]]:
    entries = AuditLog.objects.filter(
        object_type="chart.chartrecord", object_id=str(record.pk), action=AuditAction.REVEAL
    ).order_by("id")
    return [(entry.actor, entry.detail) for entry in entries]


def test_a_reveal_needs_clearance_for_the_level_and_a_reason_and_is_audited(
    record, steward, officer, django_user_model
):
    with pytest.raises(RevealRefusedError, match="not cleared for values classified restricted"):
        reveal_chart_value(record=record, part=VALUE, field_name="ssn", actor=officer, reason="x")
    clear(COMPLIANCE_OFFICER, "restricted")
    officer = django_user_model.objects.get(pk=officer.pk)  # permissions are cached per user
    with pytest.raises(RevealRefusedError, match="Say why"):
        reveal_chart_value(record=record, part=VALUE, field_name="ssn", actor=officer, reason=" ")
    revealed = reveal_chart_value(
        record=record, part=VALUE, field_name="ssn", actor=officer, reason="fraud case 4411"
    )
    assert (revealed.value, revealed.level_name) == ("123-45-6789", "restricted")
    assert reveals_of(record) == [
        (
            "officer",
            "refused to reveal ssn (restricted): you are not cleared for values "
            "classified restricted",
        ),
        ("officer", "revealed ssn (restricted); reason: fraud case 4411"),
    ]
    assert all("123-45-6789" not in str(e.after) for e in AuditLog.objects.all())
    with pytest.raises(RevealRefusedError, match="not cleared"):
        reveal_chart_value(record=record, part=VALUE, field_name="ssn", actor=steward, reason="x")


def test_only_protected_parts_can_be_revealed(record, superuser):
    assert protected_parts(record) == [(VALUE, "ssn")]
    with pytest.raises(RevealRefusedError, match="keeps no protected email"):
        reveal_chart_value(
            record=record, part=VALUE, field_name="email", actor=superuser, reason="x"
        )


def test_reveals_are_rate_limited_per_person(record, superuser, settings):
    settings.ATLAS_REVEAL_LIMIT_PER_HOUR = 2
    for _ in range(2):
        reveal_chart_value(record=record, part=VALUE, field_name="ssn", actor=superuser, reason="x")
    with pytest.raises(RevealRefusedError, match="more than 2 reveals this hour"):
        reveal_chart_value(record=record, part=VALUE, field_name="ssn", actor=superuser, reason="x")


def test_the_original_of_a_tagged_value_needs_the_clearance_its_pii_calls_for(
    customers, land, superuser, steward
):
    # notes is unclassified; a card number's pattern calls for restricted.
    land(
        customers,
        [{**GOOD, "notes": "card 4111 1111 1111 1111", "contact": "mail bob@example.org"}],
    )
    promote_to_chart(dataset=customers, triggered_by="test")
    record = ChartRecord.objects.get(dataset=customers)
    assert set(protected_parts(record)) == {(VALUE, "ssn"), (ORIGINAL, "notes"), (EXTRA, "contact")}
    assert record.extras == {"contact": "mail <email>"}
    with pytest.raises(RevealRefusedError, match="restricted"):
        reveal_chart_value(
            record=record, part=ORIGINAL, field_name="notes", actor=steward, reason="x"
        )
    revealed = reveal_chart_value(
        record=record, part=ORIGINAL, field_name="notes", actor=superuser, reason="x"
    )
    assert revealed.value == "card 4111 1111 1111 1111"
    extra = reveal_chart_value(
        record=record, part=EXTRA, field_name="contact", actor=superuser, reason="x"
    )
    assert extra.value == "mail bob@example.org"


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


def test_hash_key_rotation_remakes_tokens_and_business_keys(customers, land, settings):
    customers.business_key = ["ssn"]  # a restricted key: held as its token
    customers.save()
    land(customers, [GOOD])
    promote_to_chart(dataset=customers, triggered_by="test")
    record = ChartRecord.objects.get(dataset=customers)
    assert record.business_key == TokenKeyring.from_settings().token("123-45-6789")
    new_key = base64.b64encode(b"R" * 32).decode()
    with override_settings(ATLAS_HASH_KEY=f"new:{new_key},{settings.ATLAS_HASH_KEY}"):
        out = StringIO()
        call_command("retoken", stdout=out)
        assert "Re-made 1 tokens in 1 chart records under hash key 'new'" in out.getvalue()
        record.refresh_from_db()
        token = TokenKeyring.from_settings().token("123-45-6789")
        assert token.startswith("tk:new:")
        assert record.tokens == {"ssn": token} and record.business_key == token
        # The next record with that key supersedes it, under the new key.
        land(customers, [{**GOOD, "email": "ada@example.org"}])
        promote_to_chart(dataset=customers, triggered_by="test")
        assert ChartRecord.objects.filter(dataset=customers, is_current=True).count() == 1
