"""Crafted URLs found by an outside probe answer 400 or 404, never 500 (request_checks)."""

import logging

import pytest
from django.urls import reverse

from atlas_site.request_checks import object_or_404, parse_pk
from explore.models import LandingBatch
from governance.pipeline.models import Dataset

pytestmark = pytest.mark.django_db

NUL_URLS = [
    "/admin/chart/quarantinedrecord/?field=%00",
    "/admin/chart/quarantinedrecord/?rule=%00",
    "/admin/chart/quarantinedrecord/?rule=email%00x",
    "/admin/compliance/auditlog/?object_type=%00",
    "/admin/chart/piifinding/?pii_type=%00",
    "/admin/autocomplete/?app_label=pipeline&model_name=dataset&field_name=owner&term=%00",
    "/admin/pipeline/dataset/?q=a%00b",
    "/admin/pipeline/dataset/%00/change/",
    "/admin/?%00=1",
    "/dashboards/?x=%00",
    "/api/datasets?x=%00",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_in_the_url_is_a_400(client, superuser, url, caplog):
    client.force_login(superuser)
    client.raise_request_exception = False
    with caplog.at_level(logging.WARNING):
        response = client.get(url)
    assert response.status_code == 400, (url, response.status_code)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.levelname) for r in caplog.records] == [("django.request", "WARNING")]


def test_a_nul_is_refused_before_the_login_too(client):
    client.raise_request_exception = False
    assert client.get("/admin/chart/piifinding/?pii_type=%00").status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/admin/explore/landingbatch/abc/status/",
        "/admin/explore/landingbatch/1.5/status/",
        "/admin/explore/landingbatch/99999999999999999999/status/",
        "/admin/explore/landingbatch/-1/status/",
        "/admin/pipeline/dataset/abc/ingest/",
        "/admin/pipeline/dataset/99999999999999999999/ingest/",
        "/admin/pipeline/dataset/abc/ingest/1/status/",
        "POST /admin/pipeline/dataset/abc/ingest/",
        "POST /admin/pipeline/dataset/abc/promote/",
        "POST /admin/pipeline/dataset/abc/retry/",
    ],
)
def test_an_id_that_is_not_one_is_a_404(client, superuser, url):
    client.force_login(superuser)
    client.raise_request_exception = False
    method, _, path = url.rpartition(" ")
    response = client.post(path) if method == "POST" else client.get(path)
    assert response.status_code == 404, (url, response.status_code)


def test_the_upload_page_ignores_a_batch_parameter_that_is_no_id(client, superuser):
    dataset = Dataset.objects.create(slug="d", name="D")
    client.force_login(superuser)
    url = reverse("admin:pipeline_dataset_ingest", args=[dataset.pk])
    for value in ("abc", "²", "99999999999999999999", "-1", "1.5"):
        assert client.get(url, {"batch": value}).status_code == 200, value


def test_object_or_404_and_parse_pk():
    dataset = Dataset.objects.create(slug="d", name="D")
    assert object_or_404(Dataset.objects.all(), str(dataset.pk)) == dataset
    assert parse_pk(LandingBatch, " 12 ") == 12
    for bad in ("abc", "1.5", "²", "99999999999999999999", "", None):
        assert parse_pk(LandingBatch, bad) is None
    from django.http import Http404

    with pytest.raises(Http404):
        object_or_404(Dataset.objects.all(), "abc")
    with pytest.raises(Http404):
        object_or_404(Dataset.objects.all(), str(dataset.pk + 1))


# --- Found by fuzzing every admin URL (atlas_site.tests.test_fuzz_admin) ----------------------


@pytest.mark.parametrize("year", ["99999999999999999999", "9999", "-1", "x"])
def test_a_date_hierarchy_year_out_of_range_is_an_incorrect_filter(client, superuser, year):
    client.force_login(superuser)
    response = client.get("/admin/pipeline/deadletter/", {"last_seen_at__year": year})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_an_empty_to_field_is_a_400_on_change_and_delete_pages(client, superuser):
    dataset = Dataset.objects.create(slug="d", name="D")
    client.force_login(superuser)
    for view in ("change", "delete", "history"):
        url = reverse(f"admin:pipeline_dataset_{view}", args=[dataset.pk])
        assert client.get(url, {"_to_field": ""}).status_code == 400, view
        assert client.get(url).status_code == 200, view
