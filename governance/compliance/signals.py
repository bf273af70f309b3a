"""Every login, failed login and logout, admin and API token alike, goes to the audit log.

Connected in ComplianceConfig.ready(). Failed API tokens arrive here as Django's
`user_login_failed` too (atlas_site.security.report_failed_api_token), with `via="api"`
and the reason the token was refused. django-axes handles the same signals first (it is
listed before the Atlas apps), so a failed attempt's entry can say how many failures the
address (or the account) has and whether it is now locked out.
"""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save

from atlas_site.security import THROTTLE_SCOPE, TIMED_OUT, start_session_clock
from governance.compliance.clearance import sync_clearance_permissions
from governance.compliance.models import AuditAction, ClassificationLevel
from governance.compliance.pii.validators import forget_phone_regions
from governance.compliance.services import record_audit

USER_TYPE = "auth.user"
API_TOKEN_TYPE = "pipeline.apitoken"  # noqa: S105  (a model label)


def _throttle_note(request) -> str:

    failures = getattr(request, "axes_failures_since_start", None)
    if not failures:
        return ""
    # What the count is about (atlas_site.security.AtlasAxesHandler): the client's address,
    # or the account tried, whose count spans every address but the ones its user logs in
    # from.
    scope = getattr(request, THROTTLE_SCOPE, "address")
    where = "from this address" if scope == "address" else "for this account"
    limit = settings.AXES_FAILURE_LIMIT
    if failures < limit:
        return f" ({failures} of {limit} failures allowed {where})"
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    if failures == limit:
        return f" ({failures} failures: this {scope} is now locked out for {minutes} minutes)"
    return f" (refused during this {scope}'s {minutes}-minute cool-off; {failures} failures)"


def audit_login(sender, request, user, **kwargs) -> None:
    where = request.path if request is not None else "a direct call"
    record_audit(
        actor=user, action=AuditAction.LOGIN, instance=user, detail=f"Logged in at {where}."
    )


def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    attempted = str(credentials.get("username") or "")
    if kwargs.get("via") == "api":
        object_type = API_TOKEN_TYPE
        detail = f"API token refused: {kwargs.get('reason') or 'not accepted'}"
    else:
        object_type = USER_TYPE
        where = request.path if request is not None else "a direct call"
        detail = f"Login refused at {where}: wrong username or password, or an inactive user"
    record_audit(
        actor=None,
        action=AuditAction.LOGIN_FAILED,
        object_type=object_type,
        object_repr=attempted,
        detail=detail + _throttle_note(request) + ".",
    )


def audit_logout(sender, request, user, **kwargs) -> None:

    if user is None:  # a logout without a logged-in user ends nothing
        return
    if getattr(request, TIMED_OUT, False):
        detail = (
            f"Session ended: {settings.ATLAS_SESSION_MAX_AGE} seconds after its login "
            "(ATLAS_SESSION_MAX_AGE)."
        )
    else:
        detail = "Logged out."
    record_audit(actor=user, action=AuditAction.LOGOUT, instance=user, detail=detail)


def sync_clearances(sender, **kwargs) -> None:
    # Each level has its clearance permission, named after it (clearance.py).

    sync_clearance_permissions()


def reread_phone_regions(sender, setting, **kwargs) -> None:
    if setting == "ATLAS_PHONE_REGIONS":
        forget_phone_regions()


def connect() -> None:
    setting_changed.connect(reread_phone_regions, dispatch_uid="compliance.phone_regions")

    post_save.connect(sync_clearances, sender=ClassificationLevel, dispatch_uid="compliance.clr")
    post_delete.connect(sync_clearances, sender=ClassificationLevel, dispatch_uid="compliance.cld")

    user_logged_in.connect(audit_login, dispatch_uid="compliance.audit_login")
    user_login_failed.connect(audit_login_failed, dispatch_uid="compliance.audit_login_failed")
    user_logged_out.connect(audit_logout, dispatch_uid="compliance.audit_logout")
    # The session's absolute timeout counts from its login (atlas_site has no AppConfig).
    user_logged_in.connect(start_session_clock, dispatch_uid="atlas.start_session_clock")
