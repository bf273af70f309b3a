"""Where an audited change came from: the request being served, if any."""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from atlas_site.security import client_ip


@dataclass(frozen=True)
class Origin:
    remote_addr: str | None = None
    user_agent: str = ""


_NO_REQUEST = Origin()
_current_origin: ContextVar[Origin] = ContextVar("atlas_audit_origin", default=_NO_REQUEST)


def client_address(request) -> str | None:
    # The address login throttling counts: X-Forwarded-For only as far as the trusted
    # proxies (ATLAS_TRUSTED_PROXIES) vouch for it, never the client's own word.

    return client_ip(request)


@contextmanager
def bind_request(request):
    token = _current_origin.set(
        Origin(
            remote_addr=client_address(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )
    )
    try:
        yield
    finally:
        _current_origin.reset(token)


def current_origin() -> Origin:
    return _current_origin.get()
