from django.contrib import admin
from django.urls import include, path

from dashboards import operations
from explore.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("dashboards/", include("dashboards.urls")),
    # Probes and Prometheus: no login (see dashboards/operations.py).
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("metrics", operations.metrics, name="metrics"),
]
