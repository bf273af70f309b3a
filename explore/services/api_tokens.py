"""API tokens: issued with their terms (expiry, datasets), revoked, last use noted."""

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from explore.selectors import can_ingest, hash_token
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import ApiToken, Dataset

logger = logging.getLogger(__name__)

# --- API tokens ---------------------------------------------------------------------------

TOKEN_PREFIX = "atl_"  # noqa: S105 (marks Atlas tokens in logs and secret scanners; no secret)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def default_token_expiry(*, now: datetime | None = None) -> datetime | None:
    """When a token issued now stops working: ATLAS_API_TOKEN_DAYS (90) days on; never at 0."""
    days = getattr(settings, "ATLAS_API_TOKEN_DAYS", 90)
    if not days:
        return None
    return (now or timezone.now()) + timedelta(days=days)


def check_token_terms(
    *, user, expires_at: datetime | None, datasets: Iterable[Dataset] | None
) -> tuple[datetime | None, list[Dataset] | None]:
    """A new token's expiry and dataset limit, as issue_api_token takes them: the expiry
    (the default one for None), and the datasets sorted (None: every dataset the user may
    change). ValidationError, keyed by field, for an expiry in the past, an empty limit or
    a dataset the user may not change: a token never reaches further than its user."""

    now = timezone.now()
    if expires_at is None:
        expires_at = default_token_expiry(now=now)
    elif expires_at <= now:
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    if datasets is None:
        return expires_at, None
    limited = sorted(set(datasets), key=lambda dataset: dataset.slug)
    if not limited:
        raise ValidationError({"datasets": "A limited token needs at least one dataset."})
    beyond = [dataset.slug for dataset in limited if not can_ingest(user=user, dataset=dataset)]
    if beyond:
        raise ValidationError(
            {
                "datasets": f"{user.get_username()} may not send data to {', '.join(beyond)}: "
                "a token cannot reach further than its user."
            }
        )
    return expires_at, limited


def issue_api_token(
    *,
    user,
    name: str,
    actor,
    expires_at: datetime | None = None,
    datasets: Iterable[Dataset] | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with its plain text, which is never stored.

    `expires_at` None: the default expiry (default_token_expiry). `datasets` None: the
    token reaches every dataset the user may change; otherwise only those, each of which
    the user must be able to change (ValidationError otherwise, nothing written).
    """
    expires_at, limited = check_token_terms(user=user, expires_at=expires_at, datasets=datasets)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            token_hash=hash_token(plain),
            prefix=plain[:8],
            expires_at=expires_at,
            all_datasets=limited is None,
        )
        if limited is not None:
            token.datasets.set(limited)
        record_audit(
            actor=actor,
            action=AuditAction.CREATE,
            instance=token,
            after={
                "user": user.get_username(),
                "name": name,
                "prefix": token.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "datasets": "all" if limited is None else [d.slug for d in limited],
            },
            detail=f"issued API token {token.prefix}… for {user.get_username()}",
        )
    return token, plain


def revoke_api_token(*, token: ApiToken, actor) -> ApiToken:
    """Stop a token from working (it is kept, for the record). Revoking twice is a no-op."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_audit(
            actor=actor,
            action=AuditAction.UPDATE,
            instance=token,
            after={"revoked_at": token.revoked_at.isoformat()},
            detail=f"revoked API token {token.prefix}…",
        )
    return token


def touch_api_token(*, token: ApiToken) -> None:
    """Note the token's use; at most once a minute, not a write per request."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
