"""The HTTP API: tokens, permissions, uploads, posted records and batch status."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from explore import selectors, services
from explore.models import BatchStatus, LandingBatch
from explore.tests.conftest import gz
from governance.compliance.models import AuditLog
from governance.pipeline.models import ApiToken, Dataset

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
    assert response.status_code == 404
    assert response.json() == {"detail": "there is no dataset 'customers' for your token"}
    assert not LandingBatch.objects.exists()

    # Owning a dataset is enough for that dataset, and only that one.
    owned = Dataset.objects.create(slug="mine", name="Mine", owner=viewer, auto_promote=False)
    assert [d["slug"] for d in client.get("/api/datasets", **auth(plain)).json()] == ["mine"]
    assert upload(client, plain, slug="mine").status_code == 202
    assert upload(client, plain, slug="customers", name="x.csv").status_code == 404
    assert owned.batches.count() == 1
    assert upload(client, plain, slug="nothing", name="y.csv").status_code == 404


def test_a_dataset_the_token_may_not_use_is_answered_like_a_missing_one(client, customers, viewer):
    # A 403 for existing datasets and a 404 for the others would let any token holder
    # list the dataset slugs: both get the same status and the same body.
    plain = services.issue_api_token(user=viewer, name="viewer", actor=viewer)[1]
    records = json.dumps([{"id": 1}])
    for send in (
        lambda slug: upload(client, plain, slug=slug),
        lambda slug: client.post(
            f"/api/datasets/{slug}/records",
            records,
            content_type="application/json",
            **auth(plain),
        ),
    ):
        forbidden, missing = send("customers"), send("no-such-slug")
        assert forbidden.status_code == missing.status_code == 404
        assert forbidden.json()["detail"].replace("customers", "X") == missing.json()[
            "detail"
        ].replace("no-such-slug", "X")
        assert forbidden.headers.keys() == missing.headers.keys()
    assert not LandingBatch.objects.exists()


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
    assert status["status"] == BatchStatus.LOADED
    assert (status["rows_total"], status["rows_parsed"], status["rows_failed"]) == (2, 2, 0)
    assert status["run"]["status"] == "succeeded"
    # Loaded, and waiting for its promotion: a client polling until done waits on, where
    # the dataset promotes by itself.
    waiting = status["promotion"]
    assert waiting["state"] == "waiting" and status["done"] is not waiting["automatic"]

    from chart.services import promote_to_chart

    promote_to_chart(dataset=customers, triggered_by="test")
    status = client.get(f"/api/batches/{batch.pk}", **auth(token)).json()
    promotion = status["promotion"]
    assert (promotion["state"], promotion["promoted"] + promotion["quarantined"]) == ("promoted", 2)
    assert status["done"] is True


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


def test_batch_status_of_another_users_dataset_is_a_404_like_a_missing_batch(
    client, customers, token, viewer
):
    batch = services.store_upload(
        dataset=customers,
        file=SimpleUploadedFile("c.csv", CSV),
        filename="c.csv",
        actor="tests",
    )
    plain = services.issue_api_token(user=viewer, name="viewer", actor=viewer)[1]
    theirs = client.get(f"/api/batches/{batch.pk}", **auth(plain))
    missing = client.get(f"/api/batches/{batch.pk + 1000}", **auth(plain))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(str(batch.pk), "N") == missing.json()["detail"].replace(
        str(batch.pk + 1000), "N"
    )
    assert "customers" not in theirs.content.decode()
    assert client.get(f"/api/batches/{batch.pk}", **auth(token)).status_code == 200
    assert client.get("/api/batches/999999", **auth(token)).status_code == 404


# --- Caching ------------------------------------------------------------------------------


def test_every_api_answer_is_no_store(client, customers, token, settings):
    records = json.dumps([{"id": 1}])
    batch = upload(client, token).json()["id"]
    answers = {
        "list": client.get("/api/datasets", **auth(token)),
        "accepted": client.post(
            "/api/datasets/customers/records",
            records,
            content_type="application/json",
            **auth(token),
        ),
        "status": client.get(f"/api/batches/{batch}", **auth(token)),
        "missing": client.get("/api/batches/999999", **auth(token)),
        "unauthenticated": client.get("/api/datasets"),
        "refused token": client.get("/api/datasets", **auth("atl_nope")),
        "invalid": client.get("/api/batches/not-a-number", **auth(token)),
        "conflict": upload(client, token),
    }
    settings.AXES_FAILURE_LIMIT = 1  # the refused token above already reached the limit
    answers["locked out"] = client.get("/api/datasets", **auth("atl_nope"))
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "list": 200,
        "accepted": 202,
        "status": 200,
        "missing": 404,
        "unauthenticated": 401,
        "refused token": 401,
        "invalid": 422,
        "conflict": 409,
        "locked out": 429,
    }
    for name, response in answers.items():
        assert "no-store" in response.get("Cache-Control", ""), name


# --- Token expiry and dataset limits ----------------------------------------------------------


def test_tokens_expire_after_the_configured_days_by_default(client, customers, steward, settings):
    before = timezone.now()
    token, _ = services.issue_api_token(user=steward, name="default", actor=steward)
    assert before + timedelta(days=90) <= token.expires_at <= timezone.now() + timedelta(days=90)
    settings.ATLAS_API_TOKEN_DAYS = 7
    token, _ = services.issue_api_token(user=steward, name="week", actor=steward)
    assert token.expires_at - before < timedelta(days=7, minutes=1)
    settings.ATLAS_API_TOKEN_DAYS = 0
    token, _ = services.issue_api_token(user=steward, name="forever", actor=steward)
    assert token.expires_at is None
    chosen = timezone.now() + timedelta(days=3)
    token, _ = services.issue_api_token(
        user=steward, name="chosen", actor=steward, expires_at=chosen
    )
    assert token.expires_at == chosen
    with pytest.raises(ValidationError) as refused:
        services.issue_api_token(
            user=steward, name="past", actor=steward, expires_at=timezone.now()
        )
    assert "expires_at" in refused.value.message_dict
    assert not ApiToken.objects.filter(name="past").exists()
    entry = AuditLog.objects.filter(object_type="pipeline.apitoken").order_by("id").first()
    assert entry.after["expires_at"] and entry.after["datasets"] == "all"


def test_a_token_issued_before_expiry_and_limits_keeps_working(client, customers, steward):
    # What migration pipeline 0008 leaves an existing token with: no expiry, every dataset.
    from importlib import import_module

    migration = import_module("governance.pipeline.migrations.0008_apitoken_dataset_scope")
    added = {op.name: op.field for op in migration.Migration.operations}
    assert added["all_datasets"].default is True
    plain = "atl_" + "x" * 43
    ApiToken.objects.create(
        user=steward, name="old", token_hash=selectors.hash_token(plain), prefix=plain[:8]
    )
    token = ApiToken.objects.get(name="old")
    assert token.expires_at is None and token.all_datasets
    assert [d["slug"] for d in client.get("/api/datasets", **auth(plain)).json()] == ["customers"]
    assert upload(client, plain).status_code == 202


def test_a_token_limited_to_datasets_reaches_only_those(client, customers, steward):
    orders = Dataset.objects.create(slug="orders", name="Orders", auto_promote=False)
    token, plain = services.issue_api_token(
        user=steward, name="orders only", actor=steward, datasets=[orders]
    )
    assert not token.all_datasets and list(token.datasets.all()) == [orders]
    assert [d["slug"] for d in client.get("/api/datasets", **auth(plain)).json()] == ["orders"]
    assert upload(client, plain, slug="orders").status_code == 202
    refused = upload(client, plain, slug="customers", name="other.csv")
    assert refused.status_code == 404
    assert refused.json() == {"detail": "there is no dataset 'customers' for your token"}
    assert not customers.batches.exists()

    # Batches of the datasets it does not reach are out of its sight too.
    full = services.issue_api_token(user=steward, name="all", actor=steward)[1]
    batch = upload(client, full, name="third.csv").json()["id"]
    assert client.get(f"/api/batches/{batch}", **auth(full)).status_code == 200
    assert client.get(f"/api/batches/{batch}", **auth(plain)).status_code == 404

    entry = AuditLog.objects.get(object_type="pipeline.apitoken", object_id=str(token.pk))
    assert entry.after["datasets"] == ["orders"]

    # Its dataset deleted, a limited token reaches nothing (it does not fall back to "all").
    gone = Dataset.objects.create(slug="gone", name="Gone", auto_promote=False)
    plain = services.issue_api_token(user=steward, name="gone", actor=steward, datasets=[gone])[1]
    gone.delete()
    assert client.get("/api/datasets", **auth(plain)).json() == []
    assert upload(client, plain, name="fourth.csv").status_code == 404


def test_a_token_cannot_be_limited_beyond_its_user(customers, viewer, steward):
    with pytest.raises(ValidationError) as refused:
        services.issue_api_token(user=viewer, name="x", actor=steward, datasets=[customers])
    assert "viewer may not send data to customers" in " ".join(
        refused.value.message_dict["datasets"]
    )
    with pytest.raises(ValidationError):
        services.issue_api_token(user=steward, name="none", actor=steward, datasets=[])
    assert not ApiToken.objects.exists()


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
