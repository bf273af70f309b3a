"""/healthz, /readyz and /metrics against the real database, Redis and a real worker."""

import socket
import uuid
from datetime import UTC, date, datetime, timedelta

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


@pytest.mark.django_db
def test_readyz_is_this_replicas_database_and_cache_only(client):
    # No worker runs, no beat beats: a web replica is still ready to serve.
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["components"]) == {"database", "cache"}
    with override_settings(STORAGES=FAILING_STORAGE):
        assert client.get("/readyz").status_code == 200  # the storage is /statusz's business


@pytest.mark.django_db
def test_readyz_names_a_cache_that_is_down(client, monkeypatch):
    from django.core.cache.backends.redis import RedisCache

    from dashboards import operations

    # A cache client on a port where nothing listens: refused at once.
    monkeypatch.setattr(operations, "cache", RedisCache("redis://127.0.0.1:1/0", {}))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]
    assert "127.0.0.1" not in response.content.decode()


def beat_seen(minutes_ago: float) -> None:
    from django.utils import timezone

    from governance.pipeline.models import Heartbeat

    Heartbeat.objects.update_or_create(
        component="beat",
        node="beat@a",
        defaults={"seen_at": timezone.now() - timedelta(minutes=minutes_ago)},
    )


@pytest.mark.worker
@pytest.mark.django_db
def test_statusz_is_ok_with_every_pipeline_component_up(settings, tmp_path):
    from django.test import Client

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    beat_seen(1)
    with start_worker(queue=f"statusz-{uuid.uuid4().hex[:8]}"):
        response = Client().get("/statusz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["components"]) == {"broker", "worker", "beat", "storage"}
    # The worker answered, but its node name (celery@<host>) is not for anonymous callers.
    text = response.content.decode()
    assert "statusz-" not in text and "celery@" not in text and "beat@" not in text
    assert socket.gethostname() not in text
    assert list(tmp_path.iterdir()) == []  # the probe wrote nothing


@pytest.mark.django_db
def test_statusz_names_a_missing_worker_and_a_silent_beat(client):
    beat_seen(9)
    response = client.get("/statusz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["failing"] == ["worker", "beat"]
    assert body["components"]["worker"]["detail"] == "no worker answered within 1 s"
    assert body["components"]["beat"]["detail"] == "no heartbeat for 5 min"
    assert body["components"]["broker"]["ok"]


@pytest.mark.django_db
def test_statusz_names_a_broker_that_is_down(client):
    # Port 1: nothing listens there, the connection is refused at once.
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/statusz")
    assert response.status_code == 503
    body = response.json()
    assert "broker" in body["failing"]
    assert not body["components"]["broker"]["ok"]
    # The error's text names the broker's address: it goes to the log, not to the caller.
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_statusz_names_storage_that_cannot_be_read(client):
    with override_settings(STORAGES=FAILING_STORAGE):
        response = client.get("/statusz")
    body = response.json()
    assert "storage" in body["failing"]
    assert body["components"]["storage"]["detail"] == "unavailable"
    assert "/dev/null" not in response.content.decode()


@pytest.mark.django_db
def test_statusz_reads_s3_without_writing(client, settings, s3_storage):
    # A real S3 peer (moto): the probe's HEAD request answers; no object is written.
    assert client.get("/statusz").json()["components"]["storage"]["ok"]
    listed = s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])
    assert listed["KeyCount"] == 0
    default = settings.STORAGES["default"]
    missing = {**default["OPTIONS"], "bucket_name": "no-such-bucket"}
    settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": missing}}
    assert not client.get("/statusz").json()["components"]["storage"]["ok"]


@pytest.mark.django_db
def test_probes_name_no_host_worker_or_error_text(client, monkeypatch, caplog):
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
        raise OSError("cannot read s3://secret-bucket at 10.1.2.3:9000 as atlas-admin")

    monkeypatch.setitem(operations.PIPELINE_CHECKS, "storage", failing_storage)
    beat_seen(0)
    response = client.get("/statusz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["storage"]
    assert {name: c["ok"] for name, c in body["components"].items()} == {
        "broker": True,
        "worker": True,
        "beat": True,
        "storage": False,
    }
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


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/statusz", "/metrics"])
@pytest.mark.django_db
def test_operations_endpoints_need_no_login_and_only_answer_get(client, url):
    response = client.post(url)
    assert response.status_code == 405
