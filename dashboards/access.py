"""Who may read the dashboards: every Atlas role, and nobody else.

Viewers, data stewards, compliance officers and superusers read every page; what a
page shows beyond that follows the user's own permissions (audit activity needs
compliance.view_auditlog). Anyone not logged in is sent to the admin login.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.utils.cache import add_never_cache_headers

from governance.compliance.roles import COMPLIANCE_OFFICER, DATA_STEWARD, VIEWER

ROLES = (VIEWER, DATA_STEWARD, COMPLIANCE_OFFICER)
LOGIN_URL = "/admin/login/"


def can_read_dashboards(user) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    return user.is_staff and user.groups.filter(name__in=ROLES).exists()


def can_read_audit(user) -> bool:
    return user.has_perm("compliance.view_auditlog")


def dashboard_view(view):
    """Login required (redirect to the admin login), then an Atlas role (403 otherwise).

    Every answer is `Cache-Control: no-store` (with Django's never-cache headers): a page
    drawn for one user's permissions must not be kept by a browser or a proxy, where the
    next person at that machine, or behind that proxy, would read it.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            response = redirect_to_login(request.get_full_path(), LOGIN_URL)
        elif not can_read_dashboards(request.user):
            raise PermissionDenied("The dashboards are for Atlas's viewers, stewards and officers.")
        else:
            response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return wrapper


# The admin pages the home links to, and the permission each needs: a link the reader
# may not follow is not shown.
ADMIN_LINKS = {
    "dataset": "pipeline.view_dataset",
    "run": "pipeline.view_run",
    "quarantine": "chart.view_quarantinedrecord",
    "metric": "navigate.view_metricdefinition",
    "score": "quality.view_qualityscore",
}


def admin_links(user) -> dict[str, bool]:
    """Which of the home's admin links `user` may follow."""
    return {link: user.has_perm(permission) for link, permission in ADMIN_LINKS.items()}
