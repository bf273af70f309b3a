"""Revealing one protected value: with clearance, a reason, a rate limit, and an audit entry.

A value whose level requires encryption is never shown in clear on a page, not even to
a cleared reader. A cleared reader may reveal it, one value at a time (there is no bulk
reveal), saying why; every reveal and every refusal is audited, naming the record, the
field and the level, never the value. Each person may reveal at most
ATLAS_REVEAL_LIMIT_PER_HOUR values an hour (a fixed window counted in the cache).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils import timezone

from governance.compliance.clearance import Clearance
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit

REASON_MAX_LENGTH = 500


class RevealRefusedError(PermissionError):
    """The reveal was refused; the message says why (and never holds the value).

    `forbidden`: the reader may not (no clearance, over the limit), as against a request
    to put right (no reason given, nothing to reveal).
    """

    def __init__(self, message: str, *, forbidden: bool = False):
        super().__init__(message)
        self.forbidden = forbidden


@dataclass(frozen=True)
class Revealed:
    value: str
    level_name: str
    remaining: int  # reveals left in this hour


def reveal_limit() -> int:
    return int(getattr(settings, "ATLAS_REVEAL_LIMIT_PER_HOUR", 30))


def _count_this_hour(actor) -> int:
    key = f"atlas:reveals:{actor.pk}:{timezone.now():%Y%m%d%H}"
    cache.add(key, 0, timeout=3700)
    return cache.incr(key)


def reveal(
    *,
    actor,
    level_id: int,
    instance: models.Model,
    field_name: str,
    reason: str,
    read: Callable[[], str],
) -> Revealed:
    """`read()` the value of `instance`'s `field_name` for `actor`, if they may."""
    clearance = Clearance.for_user(actor)
    level = clearance.level(level_id)
    level_name = level.name if level is not None else "unknown level"
    reason = (reason or "").strip()

    def refuse(why: str) -> RevealRefusedError:
        record_audit(
            actor=actor,
            action=AuditAction.REVEAL,
            instance=instance,
            after={"field": field_name, "level": level_name, "revealed": False},
            detail=f"refused to reveal {field_name} ({level_name}): {why}",
        )
        return RevealRefusedError(why, forbidden=True)

    if level is None or not level.protects:
        raise RevealRefusedError(f"{field_name} is not protected: there is nothing to reveal.")
    if not getattr(actor, "is_authenticated", False) or level.id not in clearance.cleared:
        raise refuse(f"you are not cleared for values classified {level_name}")
    if not reason:
        raise RevealRefusedError("Say why you need to see this value: the reason is audited.")
    if len(reason) > REASON_MAX_LENGTH:
        raise RevealRefusedError(f"The reason is longer than {REASON_MAX_LENGTH} characters.")
    count = _count_this_hour(actor)
    if count > reveal_limit():
        raise refuse(f"more than {reveal_limit()} reveals this hour; try again later")
    value = read()
    record_audit(
        actor=actor,
        action=AuditAction.REVEAL,
        instance=instance,
        after={"field": field_name, "level": level_name, "revealed": True, "reason": reason},
        detail=f"revealed {field_name} ({level_name}); reason: {reason}",
    )
    return Revealed(value=value, level_name=level_name, remaining=max(reveal_limit() - count, 0))
