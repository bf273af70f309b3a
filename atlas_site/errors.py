"""403 and 404 pages: inside the admin's frame (its header, breadcrumbs and links) for the
admin's own addresses, a plain page with the way home for the others.

The exception's text is never shown: it may name an object the reader may not know of.
"""

from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static

TITLES = {
    403: "You may not open this page",
    404: "There is no such page",
}
EXPLANATIONS = {
    403: "Your role does not allow this page or action. Ask a data steward or a compliance "
    "officer if you need it.",
    404: "The address is wrong, or what it named was removed.",
}


def _error_page(request, status: int):
    context = {
        "status": status,
        "title": TITLES[status],
        "explanation": EXPLANATIONS[status],
        "path": request.path,
    }
    if request.path.startswith("/admin/") and request.user.is_authenticated:
        context.update(admin.site.each_context(request))
        template = "admin/atlas/error.html"
    else:
        template = "atlas/error.html"
    return render(request, template, context, status=status)


def permission_denied(request, exception=None):
    return _error_page(request, 403)


def page_not_found(request, exception=None):
    return _error_page(request, 404)


def favicon(request):
    """/favicon.ico, which browsers ask for on pages naming no icon: Atlas's icon.

    Resolved per request, not at import: in production the static files' manifest
    exists only once collectstatic has run.
    """
    return HttpResponsePermanentRedirect(static("dashboards/favicon.svg"))
