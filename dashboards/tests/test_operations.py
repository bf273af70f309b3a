"""/healthz, /readyz and /metrics against the real database, Redis and a real worker."""

import socket
import uuid
from datetime import UTC, date, datetime

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from atlas_site.testing.celery_worker import start_worker
from dashboards.models import PiiFindingSummary
from governance.pipeline.models import Run, RunKind, RunStatus

FAILING_STORAGE = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Below a file, not a folder: nothing can be written there, not even by root.
        "OPTIONS": {"location": "/dev/null/atlas-storage"},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def test_healthz_answers_without_the_database(client):
    # No django_db mark: any database access in the request would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"ok\n"


@pytest.mark.worker
@pytest.mark.django_db
def test_readyz_is_ready_with_every_component_up():
    from django.test import Client

    with start_worker(queue=f"readyz-{uuid.uuid4().hex[:8]}"):
        response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["components"]) == {"database", "broker", "storage", "worker"}
    assert all(component["ok"] for component in body["components"].values())
    # The worker answered, but its node name (celery@<host>) is not for anonymous callers.
    assert body["components"]["worker"]["detail"] == "ok"
    text = response.content.decode()
    assert "readyz-" not in text and "celery@" not in text
    assert socket.gethostname() not in text


@pytest.mark.django_db
def test_readyz_names_a_missing_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker"]
    assert body["components"]["worker"]["detail"] == "no worker answered within 1 s"
    assert body["components"]["database"]["ok"] and body["components"]["broker"]["ok"]


@pytest.mark.django_db
def test_readyz_names_a_broker_that_is_down(client):
    # Port 1: nothing listens there, the connection is refused at once.
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "broker" in body["failing"]
    assert not body["components"]["broker"]["ok"]
    assert body["components"]["database"]["ok"] and body["components"]["storage"]["ok"]
    # The error's text names the broker's address: it goes to the log, not to the caller.
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_names_storage_that_cannot_be_written(client):
    with override_settings(STORAGES=FAILING_STORAGE):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert {"storage", "worker"} == set(body["failing"])
    assert body["components"]["storage"]["detail"] == "unavailable"
    assert "/dev/null" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_names_no_host_worker_or_error_text(client, monkeypatch, caplog):
    # A worker answering from a named host, and a check failing with a revealing message:
    # the anonymous answer keeps up/down per component and nothing that identifies.
    from atlas_site.celery import app
    from dashboards import operations

    monkeypatch.setattr(
        app.control,
        "ping",
        lambda **options: [{"celery@worker-7.internal.example": {"ok": "pong"}}],
    )

    def failing_storage():
        raise OSError("cannot write s3://secret-bucket at 10.1.2.3:9000 as atlas-admin")

    monkeypatch.setitem(operations.READINESS_CHECKS, "storage", failing_storage)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["storage"]
    assert {name: c["ok"] for name, c in body["components"].items()} == {
        "database": True,
        "broker": True,
        "storage": False,
        "worker": True,
    }
    assert body["components"]["worker"]["detail"] == "ok"
    assert body["components"]["storage"]["detail"] == "unavailable"
    text = response.content.decode()
    for secret in ("worker-7", "internal.example", "secret-bucket", "10.1.2.3", "atlas-admin"):
        assert secret not in text
    # The operator still finds the reason in the log.
    assert "secret-bucket" in caplog.text


def metric_samples(response) -> dict[tuple[str, tuple], float]:
    families = text_string_to_metric_families(response.content.decode())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_in_prometheus_text_format(client, dataset):
    finished = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for kind, status, promoted, quarantined in [
        (RunKind.INGEST, RunStatus.SUCCEEDED, 10, 1),
        (RunKind.PROMOTE_CHART, RunStatus.SUCCEEDED, 7, 3),
        (RunKind.PROMOTE_CHART, RunStatus.FAILED, 0, 0),
    ]:
        run = Run.objects.create(
            dataset=dataset,
            kind=kind,
            status=status,
            triggered_by="test",
            rows_in=promoted + quarantined,
            rows_promoted=promoted,
            rows_quarantined=quarantined,
            finished_at=finished,
        )
    PiiFindingSummary.objects.create(
        run=run,
        dataset=dataset,
        day=date(2026, 11, 20),
        field_name="notes",
        pii_type="email",
        findings=5,
    )
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        with override_settings(ATLAS_PROMOTION_QUEUE=queue):
            from dashboards.tasks import refresh_dashboards

            # No worker reads this queue: the two messages wait in Redis.
            refresh_dashboards.apply_async(queue=queue)
            refresh_dashboards.apply_async(queue=queue)
            response = client.get("/metrics")
    finally:
        broker.delete(queue)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = metric_samples(response)
    slug = dataset.slug
    assert samples[("atlas_runs_total", (("kind", "promote_chart"), ("status", "failed")))] == 1
    assert samples[("atlas_runs_total", (("kind", "ingest"), ("status", "succeeded")))] == 1
    key = (("dataset", slug), ("kind", "promote_chart"))
    assert samples[("atlas_rows_promoted_total", key)] == 7
    assert samples[("atlas_rows_quarantined_total", key)] == 3
    assert samples[("atlas_pii_findings_total", (("dataset", slug), ("pii_type", "email")))] == 5
    assert samples[("atlas_queue_length", (("queue", queue),))] == 2
    assert samples[("atlas_broker_up", ())] == 1
    last = samples[
        ("atlas_last_successful_run_timestamp_seconds", (("dataset", slug), ("kind", "ingest")))
    ]
    assert last == finished.timestamp()
    # The failed chart run is not "successful": the timestamp is the succeeded one's.
    assert (
        "atlas_last_successful_run_timestamp_seconds",
        (("dataset", slug), ("kind", "promote_chart")),
    ) in samples


@pytest.mark.django_db
def test_metrics_survive_a_broker_that_is_down(client):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/metrics")
    assert response.status_code == 200
    samples = metric_samples(response)
    assert samples[("atlas_broker_up", ())] == 0


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.django_db
def test_operations_endpoints_need_no_login_and_only_answer_get(client, url):
    response = client.post(url)
    assert response.status_code == 405
