"""The HTTP API: tokens, permissions, uploads, posted records and batch status."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from explore import services
from explore.models import BatchStatus, LandingBatch
from explore.tests.conftest import gz
from governance.compliance.models import AuditLog
from governance.pipeline.models import Dataset

pytestmark = pytest.mark.django_db

CSV = b"id,name,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n"


@pytest.fixture
def token(steward):
    return services.issue_api_token(user=steward, name="tests", actor=steward)[1]


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def upload(client, token, slug="customers", content=CSV, name="customers.csv", **data):
    return client.post(
        f"/api/datasets/{slug}/files",
        {"file": SimpleUploadedFile(name, content), **data},
        **auth(token),
    )


def test_without_a_token_the_answer_is_401_json(client, customers):
    for response in (
        client.get("/api/datasets"),
        client.get("/api/datasets", HTTP_AUTHORIZATION="Basic dXNlcjpwdw=="),
        client.post("/api/datasets/customers/records", "[]", content_type="application/json"),
    ):
        assert response.status_code == 401
        assert "Bearer" in response.json()["detail"]


def test_unknown_revoked_and_expired_tokens_are_401(client, customers, steward, token):
    assert client.get("/api/datasets", **auth("atl_nope")).json() == {"detail": "unknown API token"}
    api_token = steward.api_tokens.get()
    api_token.expires_at = timezone.now() - timedelta(minutes=1)
    api_token.save()
    response = client.get("/api/datasets", **auth(token))
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    api_token.expires_at = None
    api_token.save()
    assert client.get("/api/datasets", **auth(token)).status_code == 200
    services.revoke_api_token(token=api_token, actor=steward)
    response = client.get("/api/datasets", **auth(token))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_a_token_of_an_inactive_user_is_401(client, customers, steward, token):
    steward.is_active = False
    steward.save()
    assert client.get("/api/datasets", **auth(token)).status_code == 401


def test_a_token_reaches_only_datasets_its_user_may_change(
    client, customers, viewer, django_user_model
):
    plain = services.issue_api_token(user=viewer, name="viewer", actor=viewer)[1]
    assert client.get("/api/datasets", **auth(plain)).json() == []
    response = upload(client, plain)
    assert response.status_code == 403
    assert response.json() == {"detail": "your token may not send data to dataset 'customers'"}
    assert not LandingBatch.objects.exists()

    # Owning a dataset is enough for that dataset, and only that one.
    owned = Dataset.objects.create(slug="mine", name="Mine", owner=viewer, auto_promote=False)
    assert [d["slug"] for d in client.get("/api/datasets", **auth(plain)).json()] == ["mine"]
    assert upload(client, plain, slug="mine").status_code == 202
    assert upload(client, plain, slug="customers", name="x.csv").status_code == 403
    assert owned.batches.count() == 1
    assert client.post("/api/datasets/nothing/files", **auth(plain)).status_code in (404, 422)


def test_list_datasets_shows_the_contract(client, customers, token):
    [dataset] = client.get("/api/datasets", **auth(token)).json()
    assert dataset["slug"] == "customers"
    assert [f["name"] for f in dataset["fields"]] == ["id", "name", "email"]


def test_upload_stores_queues_and_reports_the_batch(
    client, customers, token, steward, sent_loads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, token, content=gz(CSV), name="customers.csv.gz")
    assert response.status_code == 202, response.content
    body = response.json()
    batch = LandingBatch.objects.get()
    assert body["id"] == batch.pk and body["status"] == "stored" and body["compression"] == "gzip"
    assert batch.uploaded_by == steward
    assert sent_loads == [batch.pk]
    entry = AuditLog.objects.get(object_type="explore.landingbatch", action="create")
    assert entry.actor == steward.username and "via api" in entry.detail

    services.load_batch(batch_id=batch.pk)
    status = client.get(f"/api/batches/{batch.pk}", **auth(token)).json()
    assert status["status"] == BatchStatus.LOADED and status["done"] is True
    assert (status["rows_total"], status["rows_parsed"], status["rows_failed"]) == (2, 2, 0)
    assert status["run"]["status"] == "succeeded"


def test_upload_refusals_are_json_with_the_reason(client, customers, token, settings):
    first = upload(client, token).json()
    duplicate = upload(client, token, name="again.csv")
    assert duplicate.status_code == 409
    assert duplicate.json()["batch_id"] == first["id"]
    assert f"batch {first['id']}" in duplicate.json()["detail"]

    headerless = upload(client, token, content=b"1,Ann,ann@example.com\n", name="h.csv")
    assert headerless.status_code == 400 and "header" in headerless.json()["detail"]
    unknown = upload(client, token, content=b"a b c\n", name="notes.txt")
    assert unknown.status_code == 400 and "format" in unknown.json()["detail"]
    settings.ATLAS_MAX_UPLOAD_BYTES = 10
    too_big = upload(client, token, content=CSV + b"3,Cy,cy@example.com\n", name="big.csv")
    assert too_big.status_code == 413
    assert LandingBatch.objects.count() == 1


def test_the_format_can_be_given(client, customers, token):
    response = upload(client, token, content=b'{"id": 1}\n', name="events.log", format="jsonl")
    assert response.status_code == 202 and response.json()["format"] == "jsonl"


def test_post_records(client, customers, token):
    records = [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}]
    response = client.post(
        "/api/datasets/customers/records",
        json.dumps(records),
        content_type="application/json",
        **auth(token),
    )
    assert response.status_code == 202, response.content
    batch = LandingBatch.objects.get(pk=response.json()["id"])
    services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.rows_parsed == 2

    empty = client.post(
        "/api/datasets/customers/records", "[]", content_type="application/json", **auth(token)
    )
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    not_an_array = client.post(
        "/api/datasets/customers/records",
        '{"id": 1}',
        content_type="application/json",
        **auth(token),
    )
    assert not_an_array.status_code in (400, 422)


def test_batch_status_of_another_users_dataset_is_403(client, customers, token, viewer):
    batch = services.store_upload(
        dataset=customers,
        file=SimpleUploadedFile("c.csv", CSV),
        filename="c.csv",
        actor="tests",
    )
    plain = services.issue_api_token(user=viewer, name="viewer", actor=viewer)[1]
    assert client.get(f"/api/batches/{batch.pk}", **auth(plain)).status_code == 403
    assert client.get(f"/api/batches/{batch.pk}", **auth(token)).status_code == 200
    assert client.get("/api/batches/999999", **auth(token)).status_code == 404


def test_openapi_description_and_docs_are_served(client):
    spec = client.get("/api/openapi.json").json()
    assert spec["info"]["title"] == "Atlas ingestion API"
    assert set(spec["paths"]) >= {
        "/api/datasets",
        "/api/datasets/{slug}/files",
        "/api/datasets/{slug}/records",
        "/api/batches/{batch_id}",
    }
    assert client.get("/api/docs").status_code == 200
