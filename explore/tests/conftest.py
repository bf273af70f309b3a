"""Fixtures of the ingestion tests: datasets, stored files, a real Celery worker (the S3
server is atlas_site.testing.s3's).

Every test runs against the real PostgreSQL and Redis the suite is given
(DATABASE_URL, REDIS_URL). Tests not marked `worker` never reach the broker: the
loads they queue are recorded in `sent_loads` instead.
"""

import gzip
import io
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from explore import services
from orchestration import dispatch

ROOT = Path(django_settings.BASE_DIR)


@pytest.fixture(autouse=True)
def sent_loads(request, monkeypatch):
    """Batch ids whose load was queued (after commit), for tests without a worker."""
    if request.node.get_closest_marker("worker"):
        return None
    sent: list[int] = []
    monkeypatch.setattr(
        dispatch, "send_load", lambda batch_id, via="upload", task_id=None: sent.append(batch_id)
    )
    return sent


@pytest.fixture(autouse=True)
def _own_media_root(request, settings, tmp_path):
    # Stored files go to a folder of the test's own; worker tests share the worker's.
    if not request.node.get_closest_marker("worker"):
        settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def customers(db):
    """A dataset with a small contract; no automatic promotion (that is chart's business)."""
    from governance.pipeline.models import Dataset, DatasetField

    dataset = Dataset.objects.create(
        slug="customers", name="Customers", business_key=["id"], auto_promote=False
    )
    for position, name in enumerate(("id", "name", "email")):
        DatasetField.objects.create(dataset=dataset, name=name, position=position)
    return dataset


def store(dataset, content: bytes, filename: str = "data.csv", *, actor="tests", **options):
    return services.store_upload(
        dataset=dataset, file=io.BytesIO(content), filename=filename, actor=actor, **options
    )


def gz(content: bytes) -> bytes:
    return gzip.compress(content)


def raw_rows(batch):
    from explore.models import RawRecord

    return list(
        RawRecord.objects.filter(batch=batch, received_at=batch.received_at)
        .order_by("line_number")
        .values_list("line_number", "payload", "raw_text", "parse_error")
    )


# --- A real Celery worker ------------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """`celery worker --pool=solo` on a queue of its own, against the test database."""
    from atlas_site.testing.celery_worker import WorkerError, start_worker

    queue = f"atlas-ingest-test-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    try:
        with start_worker(
            queue=queue, log_path=log_path, extra_env={"ATLAS_INGEST_QUEUE": queue}
        ) as worker:
            yield {"queue": queue, "log": log_path, "worker": worker}
    except WorkerError as error:
        pytest.fail(str(error))


@pytest.fixture
def worker_queue(celery_worker, settings):
    """Route this test's loads to the worker; remove the files they stored afterwards."""
    from django.core.files.storage import default_storage

    from explore.models import LandingBatch

    settings.ATLAS_INGEST_QUEUE = celery_worker["queue"]
    yield celery_worker
    celery_worker["worker"].wait_idle()
    for name in LandingBatch.objects.values_list("file", flat=True):
        default_storage.delete(name)
