"""The admin pieces: upload page and progress, retrying batches, issuing and revoking tokens."""

import re
from datetime import timedelta

import pytest
import yaml
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from explore import selectors, services
from explore.models import BatchStatus, LandingBatch
from explore.tests.conftest import store
from governance.pipeline.models import ApiToken, Dataset

pytestmark = pytest.mark.django_db

CSV = b"id,name,email\n1,Ann,ann@example.com\n"


@pytest.fixture(autouse=True)
def _test_admin(settings):
    settings.ROOT_URLCONF = "explore.tests.admin_urls"


def ingest_url(dataset) -> str:
    return f"/admin/pipeline/dataset/{dataset.pk}/ingest/"


def test_dataset_page_links_to_the_upload_page(client, steward, customers):
    client.force_login(steward)
    page = client.get(f"/admin/pipeline/dataset/{customers.pk}/change/")
    assert page.status_code == 200
    assert ingest_url(customers).encode() in page.content


def test_upload_stores_the_file_and_shows_its_progress(
    client, steward, customers, sent_loads, django_capture_on_commit_callbacks
):
    client.force_login(steward)
    assert client.get(ingest_url(customers)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            ingest_url(customers), {"file": SimpleUploadedFile("customers.csv", CSV)}
        )
    batch = LandingBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{ingest_url(customers)}?batch={batch.pk}"
    assert batch.uploaded_by == steward and sent_loads == [batch.pk]
    assert LogEntry.objects.filter(object_id=str(customers.pk)).exists()

    page = client.get(response["Location"]).content.decode()
    status_url = f"{ingest_url(customers)}{batch.pk}/status/"
    assert f'data-status-url="{status_url}"' in page
    assert "explore/js/batch_status.js" in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script
    status = client.get(status_url).json()
    assert status["id"] == batch.pk and status["status"] == "stored" and status["done"] is False

    services.load_batch(batch_id=batch.pk)
    assert client.get(status_url).json()["status"] == "loaded"


def test_refusals_are_shown_on_the_form(client, steward, customers):
    client.force_login(steward)
    store(customers, CSV, "customers.csv")
    page = client.post(ingest_url(customers), {"file": SimpleUploadedFile("again.csv", CSV)})
    assert page.status_code == 200
    assert b"already received as batch" in page.content
    page = client.post(ingest_url(customers), {"file": SimpleUploadedFile("empty.csv", b"x")})
    assert b"Refused:" in page.content
    assert LandingBatch.objects.count() == 1


def test_who_may_not_change_the_dataset_may_not_upload(client, viewer, customers):
    client.force_login(viewer)
    # The button is not shown to whom may not use it, and the page refuses them anyway.
    page = client.get(f"/admin/pipeline/dataset/{customers.pk}/change/")
    assert page.status_code == 200 and ingest_url(customers).encode() not in page.content
    assert client.get(ingest_url(customers)).status_code == 403
    response = client.post(ingest_url(customers), {"file": SimpleUploadedFile("c.csv", CSV)})
    assert response.status_code == 403
    assert not LandingBatch.objects.exists()


def test_retry_action_queues_failed_batches_again(
    client, superuser, customers, sent_loads, django_capture_on_commit_callbacks
):
    failed = store(customers, CSV, "a.csv")
    LandingBatch.objects.filter(pk=failed.pk).update(status=BatchStatus.FAILED, error="disk")
    loaded = store(customers, CSV + b"2,Bob,bob@example.com\n", "b.csv")
    services.load_batch(batch_id=loaded.pk)
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/explore/landingbatch/",
            {"action": "retry_failed_batches", "_selected_action": [failed.pk, loaded.pk]},
            follow=True,
        )
    assert b"1 batch(es) queued to load again" in response.content
    assert b"1 batch(es) left as they are" in response.content
    failed.refresh_from_db()
    assert failed.status == BatchStatus.STORED and failed.error == ""
    assert sent_loads == [failed.pk]
    page = client.get(f"/admin/explore/landingbatch/{failed.pk}/change/")
    assert b"atlas-batch-status" in page.content
    assert client.get(f"/admin/explore/landingbatch/{failed.pk}/status/").json()["id"] == failed.pk


def test_export_contract_action_downloads_yaml(client, steward, customers):
    client.force_login(steward)
    response = client.post(
        "/admin/pipeline/dataset/",
        {"action": "export_contracts", "_selected_action": [customers.pk]},
    )
    assert response["Content-Disposition"] == 'attachment; filename="customers.contract.yaml"'
    contract = yaml.safe_load(response.content)
    assert contract["dataset"]["slug"] == "customers"
    assert [f["name"] for f in contract["fields"]] == ["id", "name", "email"]


def test_a_steward_issues_a_token_that_is_shown_once(client, steward, superuser):
    client.force_login(steward)
    form = client.get("/admin/pipeline/apitoken/add/").content.decode()
    assert 'name="user"' not in form  # a steward issues tokens for themselves only
    response = client.post(
        "/admin/pipeline/apitoken/add/", {"name": "ERP export", "user": superuser.pk}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plain = re.search(r'class="atlas-api-token"[^>]*>(atl_[^<]+)<', response.content.decode())[1]
    token = ApiToken.objects.get()
    assert token.user == steward  # not the user the form was sent with
    assert token.token_hash == selectors.hash_token(plain)
    change_page = client.get(f"/admin/pipeline/apitoken/{token.pk}/change/").content.decode()
    assert plain not in change_page and token.token_hash not in change_page
    assert client.get("/api/datasets", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200

    client.post(
        "/admin/pipeline/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get("/api/datasets", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 401
    assert client.post(f"/admin/pipeline/apitoken/{token.pk}/delete/").status_code == 403


def test_tokens_of_others_are_out_of_sight_except_for_superusers(client, steward, superuser):
    services.issue_api_token(user=steward, name="mine", actor=steward)
    theirs, _ = services.issue_api_token(user=superuser, name="theirs", actor=superuser)
    client.force_login(steward)
    listing = client.get("/admin/pipeline/apitoken/").content.decode()
    assert "mine" in listing and "theirs" not in listing
    assert client.get(f"/admin/pipeline/apitoken/{theirs.pk}/change/").status_code == 302
    client.force_login(superuser)
    assert "mine" in client.get("/admin/pipeline/apitoken/").content.decode()
    response = client.post("/admin/pipeline/apitoken/add/", {"name": "service", "user": steward.pk})
    assert response.status_code == 200
    assert ApiToken.objects.filter(name="service", user=steward).exists()


def test_viewers_have_no_token_admin(client, viewer):
    client.force_login(viewer)
    # The model's view permission comes with the Viewer role; issuing does not.
    assert client.get("/admin/pipeline/apitoken/add/").status_code == 403


def test_a_token_issued_in_the_admin_expires_by_default_and_may_be_limited(
    client, steward, customers, settings
):
    orders = Dataset.objects.create(slug="orders", name="Orders", auto_promote=False)
    client.force_login(steward)
    form = client.get("/admin/pipeline/apitoken/add/").content.decode()
    assert "Empty: 90 days from now." in form
    assert 'name="datasets"' in form

    before = timezone.now()
    response = client.post("/admin/pipeline/apitoken/add/", {"name": "default"})
    assert response.status_code == 200
    token = ApiToken.objects.get(name="default")
    assert token.all_datasets and token.expires_at >= before + timedelta(days=90)
    assert "every dataset steward may change" in response.content.decode()

    response = client.post(
        "/admin/pipeline/apitoken/add/", {"name": "orders only", "datasets": [orders.pk]}
    )
    assert response.status_code == 200
    assert "<code>orders</code>" in response.content.decode()
    token = ApiToken.objects.get(name="orders only")
    assert not token.all_datasets and list(token.datasets.all()) == [orders]
    change_page = client.get(f"/admin/pipeline/apitoken/{token.pk}/change/").content.decode()
    assert "orders" in change_page

    past = timezone.now() - timedelta(days=1)
    response = client.post(
        "/admin/pipeline/apitoken/add/",
        {
            "name": "past",
            "expires_at_0": past.strftime("%Y-%m-%d"),
            "expires_at_1": past.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200
    assert "The expiry must be in the future." in response.content.decode()
    assert not ApiToken.objects.filter(name="past").exists()

    settings.ATLAS_API_TOKEN_DAYS = 0
    assert (
        "Empty: the token does not expire."
        in client.get("/admin/pipeline/apitoken/add/").content.decode()
    )


def test_only_datasets_the_user_may_change_can_be_chosen(
    client, customers, superuser, viewer, django_user_model
):
    # Someone who may issue tokens and owns one dataset, without the steward's rights.
    from django.contrib.auth.models import Permission

    owner = django_user_model.objects.create_user("owner", password="x" * 20, is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="pipeline", codename__in=["add_apitoken", "view_apitoken"]
        )
    )
    mine = Dataset.objects.create(slug="mine", name="Mine", owner=owner, auto_promote=False)
    client.force_login(owner)
    form = client.get("/admin/pipeline/apitoken/add/").content.decode()
    offered = re.findall(r'<option value="(\d+)"', form)
    assert offered == [str(mine.pk)]
    response = client.post(
        "/admin/pipeline/apitoken/add/", {"name": "theirs", "datasets": [customers.pk]}
    )
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()

    # A superuser may pick any dataset, but not one beyond the user the token is for.
    client.force_login(superuser)
    response = client.post(
        "/admin/pipeline/apitoken/add/",
        {"name": "for viewer", "user": viewer.pk, "datasets": [customers.pk]},
    )
    assert "viewer may not send data to customers" in response.content.decode()
    assert not ApiToken.objects.exists()
    response = client.post(
        "/admin/pipeline/apitoken/add/",
        {"name": "for owner", "user": owner.pk, "datasets": [mine.pk]},
    )
    token = ApiToken.objects.get(name="for owner")
    assert token.user == owner and list(token.datasets.all()) == [mine]
