"""Login throttling (admin and API tokens), session rotation and timeouts, the CSP header.

The throttle is django-axes with its database handler: a test that ends a cool-off moves
the recorded attempts back in time instead of waiting. Who a client is: its connecting
address, or behind a trusted proxy (ATLAS_TRUSTED_PROXY_ADDRESSES) the address that proxy
saw; never what an X-Forwarded-For header from anyone else says.
"""

import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib.sessions.models import Session
from django.urls import reverse

from atlas_site.security import SESSION_LOGIN_AT, client_ip
from explore import services
from governance.compliance.models import AuditAction, AuditLog

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")


def admin_login(client, username: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password, "next": INDEX}, **extra)


def end_cool_off():
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.values("attempt_time")[:1].get()["attempt_time"]
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )


# --- Admin login throttling --------------------------------------------------------------


def test_after_the_failure_limit_the_admin_refuses_even_the_right_password(client, steward):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = admin_login(client, "steward", "wrong")
        assert response.status_code == 200  # the login form again, with its error
        assert "Please enter the correct username and password" in response.text

    response = admin_login(client, "steward", "wrong")
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert f"paused for {round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)}" in response.text
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()

    response = admin_login(client, "steward")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_a_cool_off_not_a_permanent_lock(client, steward):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "steward", "wrong")
    assert admin_login(client, "steward").status_code == 429

    end_cool_off()
    response = admin_login(client, "steward")
    assert response.status_code == 302 and response["Location"] == INDEX
    assert client.session["_auth_user_id"] == str(steward.pk)


def test_the_throttle_counts_per_address(client, steward, viewer):
    # Five failures from one address, each against another username: the address waits.
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, f"guess-{attempt}", "wrong", REMOTE_ADDR="203.0.113.7")
    response = admin_login(client, "viewer", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    assert "Too many failed logins from your address" in response.text
    # Another address is not held back, and no account is.
    assert admin_login(client, "steward", REMOTE_ADDR="198.51.100.2").status_code == 302


def test_an_account_is_throttled_whatever_addresses_the_guesses_come_from(client, steward, viewer):
    # The outside probe's guesser changed addresses between wrong passwords.
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        response = admin_login(client, "steward", "wrong", REMOTE_ADDR=f"198.51.100.{attempt + 1}")
    assert response.status_code == 429
    response = admin_login(client, "steward", REMOTE_ADDR="198.51.100.99")  # the right password
    assert response.status_code == 429
    assert "Too many failed logins to this account" in response.text
    assert "_auth_user_id" not in client.session
    # Other accounts, from those same addresses, are not held back.
    assert admin_login(client, "viewer", REMOTE_ADDR="198.51.100.1").status_code == 302


def test_an_account_lock_does_not_keep_its_user_out_where_they_log_in_from(client, steward):
    assert admin_login(client, "steward", REMOTE_ADDR="192.0.2.10").status_code == 302
    client.post(reverse("admin:logout"), REMOTE_ADDR="192.0.2.10")
    for attempt in range(settings.AXES_FAILURE_LIMIT + 3):
        admin_login(client, "steward", "wrong", REMOTE_ADDR=f"198.51.100.{attempt + 1}")

    # Someone guessing from elsewhere cannot keep steward out at the usual address...
    assert admin_login(client, "steward", REMOTE_ADDR="192.0.2.10").status_code == 302
    client.post(reverse("admin:logout"), REMOTE_ADDR="192.0.2.10")
    # ...and gets no further guesses from a new one.
    assert admin_login(client, "steward", REMOTE_ADDR="203.0.113.80").status_code == 429
    # A login older than ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS no longer vouches for the address.
    AccessLog.objects.update(
        attempt_time=AccessLog.objects.values("attempt_time")[:1].get()["attempt_time"]
        - timedelta(days=settings.ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS, seconds=1)
    )
    assert admin_login(client, "steward", REMOTE_ADDR="192.0.2.10").status_code == 429


def test_a_success_clears_only_that_accounts_failures_from_that_address(client, steward):
    # A guesser with an account of their own cannot reset the address's count by logging in.
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, f"guess-{attempt}", "wrong", REMOTE_ADDR="203.0.113.30")
    assert admin_login(client, "steward", REMOTE_ADDR="203.0.113.30").status_code == 302
    client.post(reverse("admin:logout"), REMOTE_ADDR="203.0.113.30")
    assert admin_login(client, "guess-last", "wrong", REMOTE_ADDR="203.0.113.30").status_code == 429


def test_a_success_before_the_limit_starts_the_count_again(client, steward):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, "steward", "wrong")
    assert admin_login(client, "steward").status_code == 302
    client.logout()
    assert admin_login(client, "steward", "wrong").status_code == 200


# --- Who the client is: X-Forwarded-For only from a trusted proxy --------------------------

PROXY = "10.0.0.2"


@pytest.fixture
def behind_one_proxy(settings):
    settings.ATLAS_TRUSTED_PROXIES = 1
    settings.ATLAS_TRUSTED_PROXY_ADDRESSES = [PROXY, "fd00:a71a::/64"]
    return settings


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(rf, behind_one_proxy):
    def seen(remote_addr, forwarded_for):
        request = rf.get("/", REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)
        return client_ip(request)

    # Anyone else's header is their own word.
    assert seen("192.0.2.1", "10.9.9.9") == "192.0.2.1"
    # From the proxy: the hop it appended (the right-most one); what came before is ignored.
    assert seen(PROXY, "10.9.9.9, 203.0.113.50") == "203.0.113.50"
    assert seen("fd00:a71a::7", "2001:db8::5") == "2001:db8::5"
    assert seen(f"::ffff:{PROXY}", "203.0.113.51") == "203.0.113.51"
    # A proxy that sent nothing usable counts as itself.
    assert seen(PROXY, "") == PROXY
    assert seen(PROXY, "unknown") == PROXY
    assert seen(PROXY, "203.0.113.52:4711") == PROXY
    # Two proxies: the hop the outer one appended.
    behind_one_proxy.ATLAS_TRUSTED_PROXIES = 2
    assert seen(PROXY, "10.9.9.9, 203.0.113.53, 10.0.0.1") == "203.0.113.53"
    assert seen(PROXY, "203.0.113.54") == PROXY
    # No proxies trusted (the default): REMOTE_ADDR, whatever the header says.
    behind_one_proxy.ATLAS_TRUSTED_PROXIES = 0
    assert seen(PROXY, "203.0.113.55") == PROXY


def test_changing_forwarded_for_does_not_dodge_the_throttle(client, behind_one_proxy, steward):
    # A client that reaches the server directly, naming a new address each time.
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = admin_login(
            client,
            f"guess-{attempt}",
            "wrong",
            REMOTE_ADDR="192.0.2.66",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt + 1}",
        )
        assert response.status_code == 200
    response = admin_login(
        client, "guess-last", "wrong", REMOTE_ADDR="192.0.2.66", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert response.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.66"}


def test_a_client_cannot_lock_out_an_address_it_names(client, behind_one_proxy, viewer):
    victim = "198.51.100.77"
    for attempt in range(settings.AXES_FAILURE_LIMIT + 1):
        admin_login(
            client,
            f"guess-{attempt}",
            "wrong",
            REMOTE_ADDR="192.0.2.66",
            HTTP_X_FORWARDED_FOR=victim,
        )
    # The victim, through the real proxy, is not held back.
    response = admin_login(client, "viewer", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=victim)
    assert response.status_code == 302


def test_behind_the_proxy_each_client_is_counted_apart(client, behind_one_proxy, steward):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        admin_login(
            client,
            f"guess-{attempt}",
            "wrong",
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=f"10.9.9.{attempt}, 203.0.113.40",
        )
    assert (
        admin_login(
            client, "steward", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.40"
        ).status_code
        == 429
    )
    # Another client of the same proxy logs in.
    assert (
        admin_login(
            client, "steward", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.41"
        ).status_code
        == 302
    )


# --- API token throttling -----------------------------------------------------------------


@pytest.fixture
def token(steward):
    return services.issue_api_token(user=steward, name="tests", actor=steward)[1]


def api_get(client, token: str, **extra):
    return client.get("/api/datasets", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_refused_api_tokens_are_throttled_per_address_with_a_json_429(client, token):
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        response = api_get(client, f"atl_guess{attempt}")
        assert response.status_code == 401
        assert response.json() == {"detail": "unknown API token"}

    response = api_get(client, "atl_guess-last")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert "too many failed authentication attempts" in body["detail"]
    assert body["retry_after_seconds"] == settings.AXES_COOLOFF_TIME.total_seconds()
    assert response["Retry-After"] == str(body["retry_after_seconds"])

    # During the cool-off even a good token is refused, before it is looked at.
    response = api_get(client, token)
    assert response.status_code == 429 and "detail" in response.json()
    # Another address is not held back.
    assert api_get(client, token, REMOTE_ADDR="198.51.100.2").status_code == 200

    end_cool_off()
    assert api_get(client, token).status_code == 200


def test_refused_api_tokens_do_not_lock_out_admin_logins_of_the_address(client, steward, token):
    # A script with a stale token keeps failing; people at the same address still log in.
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api_get(client, "atl_stale-token")
    assert api_get(client, token).status_code == 429
    assert admin_login(client, "steward").status_code == 302


def test_failed_admin_logins_do_not_lock_out_api_tokens_of_the_address(client, steward, token):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, f"guess-{attempt}", "wrong")
    assert admin_login(client, "steward").status_code == 429
    assert api_get(client, token).status_code == 200


def test_revoked_and_expired_tokens_count_as_failures(client, steward, token):
    api_token = steward.api_tokens.get()
    services.revoke_api_token(token=api_token, actor=steward)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert api_get(client, token).status_code == 401
    assert api_get(client, token).status_code == 429


# --- Sessions -----------------------------------------------------------------------------


def test_login_rotates_the_session_key_and_logout_ends_the_session(client, steward):
    session = client.session
    session["before-login"] = "kept"
    session.save()
    before = session.session_key

    assert admin_login(client, "steward").status_code == 302
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()  # the old key is gone
    assert client.session["before-login"] == "kept"
    assert client.get(INDEX).status_code == 200

    response = client.post(reverse("admin:logout"))
    assert response.status_code == 200
    assert not Session.objects.filter(session_key=after).exists()
    assert client.get(INDEX).status_code == 302  # back to the login page


def test_the_idle_timeout_is_renewed_by_every_request(client, steward):
    client.force_login(steward)
    response = client.get(INDEX)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == settings.SESSION_COOKIE_AGE
    assert settings.SESSION_SAVE_EVERY_REQUEST
    session = Session.objects.get(session_key=cookie.value)
    left = (session.expire_date - session.expire_date.now(session.expire_date.tzinfo)).seconds
    assert settings.SESSION_COOKIE_AGE - 60 < left <= settings.SESSION_COOKIE_AGE


def test_a_session_ends_at_its_absolute_timeout_however_active(client, steward):
    admin_login(client, "steward")
    assert time.time() - client.session[SESSION_LOGIN_AT] < 60
    assert client.get(INDEX).status_code == 200

    session = client.session
    session[SESSION_LOGIN_AT] = time.time() - settings.ATLAS_SESSION_MAX_AGE - 1
    session.save()
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert not Session.objects.filter(session_key=session.session_key).exists()
    entry = AuditLog.objects.filter(action=AuditAction.LOGOUT).get()
    assert entry.actor == "steward"
    assert "ATLAS_SESSION_MAX_AGE" in entry.detail


def test_a_session_without_a_login_time_starts_its_clock(client, steward):
    client.force_login(steward)
    session = client.session
    del session[SESSION_LOGIN_AT]
    session.save()
    assert client.get(INDEX).status_code == 200
    assert time.time() - client.session[SESSION_LOGIN_AT] < 60


# --- Content Security Policy --------------------------------------------------------------


def test_admin_pages_carry_the_content_security_policy(client, superuser):
    client.force_login(superuser)
    for url in (LOGIN, INDEX, reverse("admin:auth_user_changelist")):
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"].startswith("'self'")
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"


# --- Production headers and cookies -------------------------------------------------------

PRODUCTION_PAGE = """
import json
import django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

# Hashed static names need collectstatic's manifest; the headers do not depend on them.
plain = {**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
with override_settings(STORAGES=plain):
    insecure = Client().get("/admin/login/", HTTP_HOST="atlas.example.com")
    response = Client().get("/admin/login/", secure=True, HTTP_HOST="atlas.example.com")
cookie = response.cookies[settings.CSRF_COOKIE_NAME]
print(json.dumps({
    "redirect": [insecure.status_code, insecure.get("Location")],
    "status": response.status_code,
    "headers": dict(response.headers),
    "csrf_cookie": {"name": cookie.key, "secure": cookie["secure"], "path": cookie["path"],
                    "domain": cookie["domain"], "httponly": cookie["httponly"]},
    "session_cookie": [settings.SESSION_COOKIE_NAME, settings.SESSION_COOKIE_SECURE,
                       settings.SESSION_COOKIE_PATH, settings.SESSION_COOKIE_DOMAIN],
}))
"""


def test_production_sends_hsts_csp_and_host_prefixed_secure_cookies():
    import json

    from atlas_site.tests.test_settings import PRODUCTION_ENV, run_python

    result = run_python(PRODUCTION_PAGE, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout.strip().splitlines()[-1])
    assert page["redirect"] == [301, "https://atlas.example.com/admin/login/"]
    assert page["status"] == 200
    headers = page["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    # __Host- cookies: Secure, path=/, no Domain (browsers refuse them otherwise).
    assert page["csrf_cookie"] == {
        "name": "__Host-csrftoken",
        "secure": True,
        "path": "/",
        "domain": "",
        "httponly": True,
    }
    assert page["session_cookie"] == ["__Host-sessionid", True, "/", None]
