from django.urls import path

from dashboards import views

app_name = "dashboards"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("quality/", views.quality, name="quality"),
    path("compliance/", views.compliance, name="compliance"),
    path("storage/", views.storage, name="storage"),
    path("lineage/", views.lineage, name="lineage"),
]
