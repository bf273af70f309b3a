"""Every login, failed login and logout — admin form and API tokens — is in the audit log."""

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.urls import reverse

from explore import services
from governance.compliance.models import AuditAction, AuditLog

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def admin_login(client, username, password=PASSWORD):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password},
        HTTP_USER_AGENT="audit-test-agent",
        REMOTE_ADDR="192.0.2.10",
    )


def entries(action):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_an_admin_login_is_audited_with_who_and_from_where(client, steward):
    assert admin_login(client, "steward").status_code == 302
    [entry] = entries(AuditAction.LOGIN)
    assert (entry.actor, entry.actor_id) == ("steward", steward.pk)
    assert (entry.object_type, entry.object_id) == ("auth.user", str(steward.pk))
    assert entry.remote_addr == "192.0.2.10"
    assert entry.user_agent == "audit-test-agent"
    assert entry.detail == "Logged in at /admin/login/."


def test_a_failed_admin_login_is_audited_without_the_password(client, steward):
    assert admin_login(client, "steward", "hunter2-wrong").status_code == 200
    assert admin_login(client, "nobody-such", "hunter3-wrong").status_code == 200
    first, second = entries(AuditAction.LOGIN_FAILED)
    assert (first.actor, first.actor_id, first.object_repr) == ("anonymous", None, "steward")
    assert second.object_repr == "nobody-such"
    assert first.remote_addr == "192.0.2.10"
    assert "Login refused at /admin/login/" in first.detail
    assert f"1 of {settings.AXES_FAILURE_LIMIT} failures" in first.detail
    assert f"2 of {settings.AXES_FAILURE_LIMIT} failures" in second.detail
    stored = " ".join(str(value) for value in AuditLog.objects.values_list())
    assert "hunter2" not in stored and "hunter3" not in stored
    assert not entries(AuditAction.LOGIN)


def test_the_lockout_and_refusals_during_it_are_audited(client, steward):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "steward", "wrong")
    assert admin_login(client, "steward").status_code == 429  # the right password, refused
    failures = entries(AuditAction.LOGIN_FAILED)
    assert len(failures) == settings.AXES_FAILURE_LIMIT + 1
    assert "now locked out for" in failures[-2].detail
    assert "refused during this address's" in failures[-1].detail
    assert not entries(AuditAction.LOGIN)


def test_an_accounts_lockout_is_audited_as_the_accounts(client, steward):
    # Guesses from a new address each time: the account's count, not an address's.
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit + 1):
        client.post(
            reverse("admin:login"),
            {"username": "steward", "password": "wrong"},
            REMOTE_ADDR=f"198.51.100.{attempt + 1}",
        )
    failures = entries(AuditAction.LOGIN_FAILED)
    assert "(1 of" in failures[0].detail and "from this address" in failures[0].detail
    assert f"2 of {limit} failures allowed for this account" in failures[1].detail
    assert "this account is now locked out for" in failures[limit - 1].detail
    assert "refused during this account's" in failures[limit].detail


def test_a_logout_is_audited(client, steward):
    admin_login(client, "steward")
    client.post(reverse("admin:logout"))
    [entry] = entries(AuditAction.LOGOUT)
    assert (entry.actor, entry.object_id) == ("steward", str(steward.pk))
    assert entry.detail == "Logged out."


def test_a_logout_without_a_login_audits_nothing(client):
    client.post(reverse("admin:logout"))
    assert not AuditLog.objects.exists()


def test_refused_api_tokens_are_audited_with_the_reason(client, steward):
    token = services.issue_api_token(user=steward, name="tests", actor=steward)[1]
    services.revoke_api_token(token=steward.api_tokens.get(), actor=steward)
    client.get("/api/datasets", HTTP_AUTHORIZATION="Bearer atl_not-a-real-token")
    client.get("/api/datasets", HTTP_AUTHORIZATION=f"Bearer {token}")
    unknown, revoked = entries(AuditAction.LOGIN_FAILED)
    assert unknown.object_type == revoked.object_type == "pipeline.apitoken"
    assert unknown.object_repr == "api-token:atl_not-"  # a prefix, never the whole token
    assert unknown.detail.startswith("API token refused: unknown API token")
    assert revoked.object_repr == f"api-token:{token[:8]}"
    assert revoked.detail.startswith("API token refused: this API token was revoked")
    assert token not in " ".join(str(value) for value in AuditLog.objects.values_list())


def test_a_direct_authenticate_call_is_audited_and_not_throttled(steward):
    # A shell or management command has no request and no client address to count.
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        assert authenticate(username="steward", password="wrong") is None
    assert authenticate(username="steward", password=PASSWORD) == steward
    failures = entries(AuditAction.LOGIN_FAILED)
    assert len(failures) == settings.AXES_FAILURE_LIMIT + 1
    assert "a direct call" in failures[0].detail
