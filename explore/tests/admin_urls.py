"""An admin site wired with the ingestion mixins, as each app's admin.py will wire them."""

from django.contrib import admin
from django.urls import path

from explore.admin_ingest import ApiTokenAdmin, DatasetIngestAdminMixin, LandingBatchAdminMixin
from explore.api import api
from explore.models import LandingBatch
from governance.pipeline.models import ApiToken, Dataset

site = admin.AdminSite(name="admin")


class DatasetAdmin(DatasetIngestAdminMixin, admin.ModelAdmin):
    pass


class LandingBatchAdmin(LandingBatchAdminMixin, admin.ModelAdmin):
    pass


site.register(Dataset, DatasetAdmin)
site.register(LandingBatch, LandingBatchAdmin)
site.register(ApiToken, ApiTokenAdmin)

urlpatterns = [path("admin/", site.urls), path("api/", api.urls)]
