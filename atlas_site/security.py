"""Login throttling (django-axes) and session lifetime, for the admin and the API alike.

- `client_ip`: the one address a client is counted under (axes, the audit log) — the
  connecting peer, or, when that peer is one of `ATLAS_TRUSTED_PROXY_ADDRESSES`, the
  X-Forwarded-For hop the outermost of `ATLAS_TRUSTED_PROXIES` proxies saw.
- `AtlasAxesHandler`: axes' database handler with two doors counted apart (the admin's
  login form; API tokens), accounts throttled as well as addresses, and an account's lock
  not applied at the addresses its own user logged in from lately.
- `ThrottledAuthenticationBackend`: refuses a locked-out address or account before any
  password is checked.
- `api_client_locked_out` / `report_failed_api_token`: the throttle for API tokens, which
  are not checked by Django's `authenticate()`.
- `lockout_response`: what a locked-out client gets (JSON 429 from /api/, a page otherwise).
- `AbsoluteSessionTimeoutMiddleware` and `start_session_clock`: a session ends
  `ATLAS_SESSION_MAX_AGE` seconds after its login, however active it is (the idle timeout
  is Django's own SESSION_COOKIE_AGE renewed on every request).
"""

import ipaddress
import math
import time
from datetime import timedelta
from functools import lru_cache

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_lockout_parameters
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone

API_PREFIX = "/api/"
# What a refused API token is recorded under in axes (and the audit log): this prefix and
# the token's first characters. Django's usernames cannot hold ":", so no account's can.
API_TOKEN_USERNAME_PREFIX = "api-token:"  # noqa: S105  (a label, not a secret)
# Set on a request by AtlasAxesHandler: what its failure count is about, "address" or
# "account" (the lockout page and the audit log say which one is held back).
THROTTLE_SCOPE = "atlas_throttle_scope"
LOCKOUT_TEMPLATE = "admin/locked_out.html"
# Session key holding the time (epoch seconds) of the login that started the session.
SESSION_LOGIN_AT = "atlas_login_at"
# Set on a request whose session the absolute timeout ended (the logout audit says why).
TIMED_OUT = "atlas_session_timed_out"


# --- Who is counted ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return tuple(ipaddress.ip_network(address, strict=False) for address in addresses)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"ATLAS_TRUSTED_PROXY_ADDRESSES: {error} (addresses or CIDR networks, comma-separated)"
        ) from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: str | None) -> bool:
    """Whether `address` is one of ATLAS_TRUSTED_PROXY_ADDRESSES (addresses or networks)."""
    peer = _address(address or "")
    if peer is None:
        return False
    if peer.version == 6 and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    networks = _networks(tuple(settings.ATLAS_TRUSTED_PROXY_ADDRESSES))
    return any(peer in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client address failed logins are counted under (and the audit log names).

    The connecting peer (REMOTE_ADDR), unless that peer is one of the proxies Atlas is told
    to trust (ATLAS_TRUSTED_PROXY_ADDRESSES): anyone else's X-Forwarded-For is the client's
    own word. Behind ATLAS_TRUSTED_PROXIES proxies, each appends the address it saw, so the
    Nth hop from the right is the one the outermost proxy saw; anything to its left may be
    forged. A hop that is not an address (a misconfigured proxy) counts the proxy itself.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    proxies = settings.ATLAS_TRUSTED_PROXIES
    if proxies > 0 and is_trusted_proxy(peer):
        hops = [
            hop.strip()
            for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if hop.strip()
        ]
        if len(hops) >= proxies:
            seen = _address(hops[-proxies])
            if seen is not None:
                return str(seen)
    return peer


# --- How failures are counted -----------------------------------------------------------


def is_api_request(request_or_attempt) -> bool:
    """API tokens and the admin's login form are counted apart (two doors)."""
    if isinstance(request_or_attempt, AccessAttempt | AccessLog):
        return (request_or_attempt.username or "").startswith(API_TOKEN_USERNAME_PREFIX)
    return getattr(request_or_attempt, "path", "").startswith(API_PREFIX)


class AtlasAxesHandler(AxesDatabaseHandler):
    """axes' database handler (AXES_HANDLER), counting as Atlas needs.

    AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]: an address is held back after
    AXES_FAILURE_LIMIT failures whatever usernames it tried, and an account after as many
    failures from whatever addresses (so changing addresses does not buy more guesses).
    On top of axes:

    - Two doors. Refused API tokens count only against each other, admin logins only
      against each other: a script with a stale token does not lock the people at the
      same address out of the admin, nor the reverse. API tokens are counted per address
      only: a token's first characters are no account.
    - An account's lock is not applied at an address its own user logged in from (axes'
      AccessLog) within ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS: someone guessing a password
      from elsewhere cannot keep its owner out. The address's own count still applies.
    - A successful login clears only that account's failures from that address; the
      failures other accounts had from it, and the account's from elsewhere, stay.
    """

    def filter_user_attempts(self, request, credentials=None):
        door = Q(username__startswith=API_TOKEN_USERNAME_PREFIX)
        door = door if is_api_request(request) else ~door
        attempts_list = super().filter_user_attempts(request, credentials)
        return [attempts.filter(door) for attempts in attempts_list]

    def get_failures(self, request, credentials=None) -> int:
        parameters = get_lockout_parameters(request, credentials)
        api = is_api_request(request)
        counts = []
        for parameter, attempts in zip(
            parameters, self.get_user_attempts(request, credentials), strict=True
        ):
            if parameter == "username" and (api or self._known_address(request, credentials)):
                continue
            total = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            counts.append((total, "account" if parameter == "username" else "address"))
        # On a tie the address is named: it is what a person can change.
        failures, scope = max(counts, key=lambda count: count[0], default=(0, "address"))
        setattr(request, THROTTLE_SCOPE, scope)
        return failures

    def reset_user_attempts(self, request, credentials=None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        # The access log only answers "logged in from here lately": older rows are dropped
        # as the account logs in, so it stays as small as the window.
        AccessLog.objects.filter(
            username=user.get_username(), attempt_time__lt=self._known_since()
        ).delete()

    @staticmethod
    def _known_since():
        return timezone.now() - timedelta(days=max(settings.ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS, 0))

    @classmethod
    def _known_address(cls, request, credentials) -> bool:
        username = get_client_username(request, credentials)
        address = getattr(request, "axes_ip_address", None)
        if not username or not address or settings.ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS <= 0:
            return False
        return AccessLog.objects.filter(
            username=username, ip_address=address, attempt_time__gte=cls._known_since()
        ).exists()


class ThrottledAuthenticationBackend(AxesStandaloneBackend):
    """axes' check before the password is: a locked-out address or account is refused.

    `authenticate()` without a request (a shell, a management command, the test client's
    `login()`) has no client address to count, so it is not throttled; the admin login
    form always passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


# --- API tokens -------------------------------------------------------------------------


def api_client_locked_out(request: HttpRequest) -> bool:
    """Whether this client's address is in its cool-off after too many refused tokens."""
    return not AxesProxyHandler.is_allowed(request, {})


def report_failed_api_token(request: HttpRequest, *, presented: str, reason: str) -> None:
    """Count a refused API token like a failed login, and audit it.

    Sent as Django's `user_login_failed`, so that axes counts it against the address (apart
    from admin logins, AtlasAxesHandler) and the audit log records it
    (governance.compliance.signals). Only the first characters of the presented token are
    named (a token's public prefix).
    """
    user_login_failed.send(
        sender=__name__,
        credentials={"username": f"{API_TOKEN_USERNAME_PREFIX}{presented[:8]}"},
        request=request,
        reason=reason,
        via="api",
    )


# --- A locked-out client ----------------------------------------------------------------


def _cool_off_seconds(request: HttpRequest) -> int:
    cool_off = get_cool_off(request)
    return math.ceil(cool_off.total_seconds()) if cool_off else 0


def lockout_response(
    request: HttpRequest, original_response=None, credentials=None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a JSON 429 for the API, the admin's own page for a person."""
    seconds = _cool_off_seconds(request)
    minutes = max(1, math.ceil(seconds / 60))
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(
            {
                "detail": (
                    f"too many failed authentication attempts from your address: "
                    f"try again in {minutes} minutes"
                ),
                "retry_after_seconds": seconds,
            },
            status=status,
        )
    else:
        context = {
            **admin.site.each_context(request),
            "title": "Too many failed logins",
            "minutes": minutes,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "scope": getattr(request, THROTTLE_SCOPE, "address"),
        }
        response = TemplateResponse(request, LOCKOUT_TEMPLATE, context, status=status)
        response.render()
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


# --- Session lifetime ---------------------------------------------------------------------


def start_session_clock(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver: the absolute timeout counts from this login."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_LOGIN_AT] = time.time()


class AbsoluteSessionTimeoutMiddleware:
    """Logs out a session ATLAS_SESSION_MAX_AGE seconds after its login.

    The idle timeout (SESSION_COOKIE_AGE, renewed on every request) never ends a session
    that is used all day; this one does. A logged-in session with no login time (made
    before this middleware was deployed) starts its clock now.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            started = request.session.get(SESSION_LOGIN_AT)
            now = time.time()
            if not isinstance(started, int | float):
                request.session[SESSION_LOGIN_AT] = now
            elif now - started > settings.ATLAS_SESSION_MAX_AGE:
                setattr(request, TIMED_OUT, True)
                logout(request)  # flushes the session; the view sees an anonymous user
        return self.get_response(request)
