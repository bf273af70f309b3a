"""Login throttling (django-axes) and session lifetime, for the admin and the API alike.

- `client_ip`: the one address a client is counted under (axes) — the connecting peer,
  or behind `ATLAS_TRUSTED_PROXIES` proxies the hop the outermost proxy saw.
- `ThrottledAuthenticationBackend`: refuses a locked-out address before any password is
  checked.
- `api_client_locked_out` / `report_failed_api_token`: the same throttle for API tokens,
  which are not checked by Django's `authenticate()`.
- `lockout_response`: what a locked-out client gets (JSON 429 from /api/, a page otherwise).
- `AbsoluteSessionTimeoutMiddleware` and `start_session_clock`: a session ends
  `ATLAS_SESSION_MAX_AGE` seconds after its login, however active it is (the idle timeout
  is Django's own SESSION_COOKIE_AGE renewed on every request).
"""

import math
import time

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

API_PREFIX = "/api/"
LOCKOUT_TEMPLATE = "admin/locked_out.html"
# Session key holding the time (epoch seconds) of the login that started the session.
SESSION_LOGIN_AT = "atlas_login_at"
# Set on a request whose session the absolute timeout ended (the logout audit says why).
TIMED_OUT = "atlas_session_timed_out"


# --- Who is counted ---------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The client address failed logins are counted under.

    Without trusted proxies, the connecting peer (REMOTE_ADDR): an X-Forwarded-For header
    would be the client's own word. Behind N trusted proxies, each appends the address it
    saw to X-Forwarded-For, so the Nth hop from the right is the one the outermost proxy
    saw; anything to its left may be forged.
    """
    proxies = settings.ATLAS_TRUSTED_PROXIES
    if proxies > 0:
        hops = [
            hop.strip()
            for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if hop.strip()
        ]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None


class ThrottledAuthenticationBackend(AxesStandaloneBackend):
    """axes' check before the password is: a locked-out address is refused outright.

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
    """Whether this client's address is in its cool-off after too many failures."""
    return not AxesProxyHandler.is_allowed(request, {})


def report_failed_api_token(request: HttpRequest, *, presented: str, reason: str) -> None:
    """Count a refused API token like a failed login, and audit it.

    Sent as Django's `user_login_failed`, so that axes counts it against the address and the
    audit log records it (governance.compliance.signals), as for the admin's login form.
    Only the first characters of the presented token are named (a token's public prefix).
    """
    user_login_failed.send(
        sender=__name__,
        credentials={"username": f"api-token:{presented[:8]}"},
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
