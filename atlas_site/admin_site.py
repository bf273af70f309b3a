"""The one admin site stewards use for all seven schemas.

`AtlasAdminConfig` replaces `django.contrib.admin` in INSTALLED_APPS: it keeps the
autodiscovery of every app's admin.py and makes `admin.site` an `AtlasAdminSite`,
so `@admin.register` anywhere lands on this site.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig

from atlas_site.request_checks import reject_empty_to_field

# The order a steward reads the index in: the catalog first, then the three layers in
# the order records move through them, then the other governance areas, then users.
APP_ORDER = ("pipeline", "explore", "chart", "navigate", "quality", "compliance", "archive", "auth")

# Within an app: what a person edits first, then what the pipeline writes.
MODEL_ORDER = {
    "pipeline": (
        "Dataset",
        "DatasetField",
        "Run",
        "RunStep",
        "Watermark",
        "LineageEdge",
        "ApiToken",
    ),
    "explore": ("LandingBatch", "RawRecord"),
    "chart": ("ChartRecord", "QuarantinedRecord", "PiiFinding"),
    "navigate": ("MetricDefinition", "Fact"),
    "quality": ("QualityDimension", "QualityRule", "CheckResult", "QualityScore"),
    "compliance": (
        "ClassificationLevel",
        "PiiPattern",
        "ClassificationSuggestion",
        "AuditLog",
    ),
    "archive": ("RetentionPolicy", "ArchivedPartition"),
    "auth": ("User", "Group"),
}


def _position(order: tuple[str, ...], key: str) -> int:
    # Anything not listed keeps its place after the listed ones (the sort is stable).
    return order.index(key) if key in order else len(order)


class AtlasAdminSite(AdminSite):
    site_header = "Atlas"
    site_title = "Atlas"
    index_title = "Pipeline and governance"

    def admin_view(self, view, cacheable=False):
        # Every admin page, Django's and Atlas's, refuses an empty ?_to_field= (a 500 in
        # Django's change and delete views; atlas_site.request_checks).
        return super().admin_view(reject_empty_to_field(view), cacheable)

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        app_list.sort(key=lambda app: _position(APP_ORDER, app["app_label"]))
        for app in app_list:
            order = MODEL_ORDER.get(app["app_label"], ())
            app["models"].sort(key=lambda model: _position(order, model["object_name"]))
        return app_list


class AtlasAdminConfig(AdminConfig):
    default_site = "atlas_site.admin_site.AtlasAdminSite"
