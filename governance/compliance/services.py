"""Writes of the compliance area: the audit log, pattern trials, classification decisions."""

import ipaddress
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from governance.compliance.audit_context import current_origin
from governance.compliance.models import AuditAction, AuditLog
from governance.compliance.regex_safety import compile_safe

_encoder = DjangoJSONEncoder()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile
        return value.name or None
    return _encoder.default(value)


def snapshot(instance: models.Model) -> dict[str, Any]:
    """The stored values of an instance's concrete fields, as JSON-ready data."""
    return {
        field.attname: _jsonable(getattr(instance, field.attname))
        for field in instance._meta.concrete_fields
    }


def changed_values(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict | None, dict | None]:
    """Keep only the keys whose values differ (all keys for a creation or a deletion)."""
    if before is None or after is None:
        return before, after
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def _valid_address(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def record_audit(
    *,
    actor,
    action: str,
    instance: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
) -> AuditLog:
    """Append one entry to the audit log.

    `actor` is a user, or a string naming a system component ("celery", "schedule").
    """
    if instance is not None:
        object_type = object_type or instance._meta.label_lower
        object_id = object_id or str(instance.pk)
        object_repr = object_repr or str(instance)
    if isinstance(actor, str):
        actor_id, actor_name = None, actor
    elif actor is None or not getattr(actor, "is_authenticated", False):
        actor_id, actor_name = None, "anonymous"
    else:
        actor_id, actor_name = actor.pk, actor.get_username()
    origin = current_origin()
    return AuditLog.objects.create(
        actor_id=actor_id,
        actor=actor_name[:150],
        action=action,
        object_type=object_type[:100],
        object_id=str(object_id)[:64],
        object_repr=object_repr[:300],
        before=before,
        after=after,
        remote_addr=_valid_address(origin.remote_addr),
        user_agent=origin.user_agent,
        detail=detail,
    )


def record_change(*, actor, instance: models.Model, before: dict | None, detail: str = ""):
    """Audit a creation (before is None) or an update, storing only what changed."""
    after = snapshot(instance)
    if before is None:
        return record_audit(
            actor=actor, action=AuditAction.CREATE, instance=instance, after=after, detail=detail
        )
    old, new = changed_values(before, after)
    return record_audit(
        actor=actor,
        action=AuditAction.UPDATE,
        instance=instance,
        before=old,
        after=new,
        detail=detail,
    )


def record_deletion(*, actor, instance: models.Model, detail: str = "") -> AuditLog:
    return record_audit(
        actor=actor,
        action=AuditAction.DELETE,
        instance=instance,
        before=snapshot(instance),
        detail=detail,
    )


# --- Trying a PII pattern before saving it ------------------------------------------

TRY_SAMPLE_MAX_CHARS = 10_000
TRY_MAX_MATCHES = 100
# Text either side of a candidate handed to its validator (e.g. "1.2.3.4.5" is no IPv4).
VALIDATOR_CONTEXT_CHARS = 20

# A PII validator: (candidate, text before it, text after it) -> is it really PII.
PiiValidatorFunction = Callable[[str, str, str], bool]


def try_pattern(
    *,
    regex: str,
    sample_text: str,
    validator: PiiValidatorFunction | None = None,
    max_matches: int = TRY_MAX_MATCHES,
) -> list[dict[str, Any]]:
    """Where a candidate PII regex matches sample text, as a steward tries it out.

    The regex must pass the same checks as a saved pattern (ValidationError says
    why not) and runs with RE2, like the scanner. Each match is
    {start, end, text, valid}: `valid` is the validator's verdict, None without one.
    """
    if len(sample_text) > TRY_SAMPLE_MAX_CHARS:
        raise ValidationError(
            f"The sample text is longer than {TRY_SAMPLE_MAX_CHARS} characters; try a shorter one."
        )
    compiled = compile_safe(regex)
    matches: list[dict[str, Any]] = []
    for match in compiled.finditer(sample_text):
        if len(matches) == max_matches:
            break
        start, end = match.span()
        text = match.group()
        valid = None
        if validator is not None:
            before = sample_text[max(0, start - VALIDATOR_CONTEXT_CHARS) : start]
            after = sample_text[end : end + VALIDATOR_CONTEXT_CHARS]
            valid = bool(validator(text, before, after))
        matches.append({"start": start, "end": end, "text": text, "valid": valid})
    return matches
