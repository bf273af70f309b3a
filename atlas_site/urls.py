from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from atlas_site import errors
from dashboards import operations
from explore.api import api

urlpatterns = [
    # The home is the dashboards' first page (the admin's "View site" leads here).
    path("", RedirectView.as_view(pattern_name="dashboards:overview"), name="home"),
    # Browsers ask for /favicon.ico on pages that name no icon (the API docs, errors).
    path("favicon.ico", errors.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("dashboards/", include("dashboards.urls")),
    # Probes and Prometheus: no login (see dashboards/operations.py).
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("statusz", operations.statusz, name="statusz"),
    path("metrics", operations.metrics, name="metrics"),
]

handler403 = "atlas_site.errors.permission_denied"
handler404 = "atlas_site.errors.page_not_found"
