"""An archive run on a real Celery worker that is SIGKILLed at its most delicate moment.

The moment: the partition's rows are exported to object storage and verified, and the
worker waits to detach and drop the partition. The test makes that wait certain
instead of racing it: it holds a lock on the parent table (ACCESS SHARE, as any
reader does), so the worker's DETACH waits for it; the test sees it waiting in
pg_locks and kills the worker there. Then Redis redelivers the unacknowledged task
to a second worker, which finishes the same run.
"""

import csv
import gzip
import io
import time
import uuid

import psycopg
import pytest
from django.core.files.storage import default_storage
from django.db import connection

from atlas_site.partitions import RAW_RECORDS, existing_partitions
from atlas_site.testing.celery_worker import database_url, spawn_worker
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.archive.services.restore import restore_archived
from governance.archive.services.retention import RETENTION_LOCK
from governance.archive.tasks import request_retention
from governance.archive.tests.conftest import OLD_MONTH, at, land_raw, make_partition, raw_rows_of
from governance.compliance.envelope import decrypt_bytes
from governance.pipeline.models import Run, RunStatus

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 500
PREFIX = "archive/explore/raw_record/raw_record_2024_01__"


def stored_archives() -> list[str]:
    if not default_storage.exists("archive/explore/raw_record"):
        return []
    _dirs, files = default_storage.listdir("archive/explore/raw_record")
    folder = "archive/explore/raw_record/"
    return sorted(folder + name for name in files if (folder + name).startswith(PREFIX))


def wait_for(condition, what: str, worker, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s:\n{worker.log[-4000:]}")


@pytest.fixture
def old_partition():
    for key in stored_archives():
        default_storage.delete(key)
    make_partition(RAW_RECORDS, OLD_MONTH)
    yield "raw_record_2024_01"
    # Partitions are DDL: a transactional test's flush does not remove them.
    with connection.cursor() as cursor:
        cursor.execute('DROP TABLE IF EXISTS "explore"."raw_record_2024_01"')
    for key in stored_archives():
        default_storage.delete(key)


def test_worker_killed_mid_archive_then_redelivered_loses_and_duplicates_nothing(
    dataset, old_partition, settings, tmp_path
):
    land_raw(dataset, ROWS, at=at(OLD_MONTH))
    original = raw_rows_of(OLD_MONTH)
    original_ids = [row[0] for row in original]
    assert len(original) == ROWS
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    queue = f"atlas-archive-test-{uuid.uuid4().hex[:8]}"
    settings.ATLAS_MAINTENANCE_QUEUE = queue
    env = {"ATLAS_MAINTENANCE_QUEUE": queue}
    database = connection.settings_dict["NAME"]

    first = spawn_worker(queue=queue, log_path=tmp_path / "first.log", extra_env=env)
    second = None
    # `reader` holds the lock; `observer` watches (autocommit: pg_stat_activity is read
    # once per transaction, so a poll inside one transaction would never see a change).
    reader = psycopg.connect(database_url(database), autocommit=False)
    observer = psycopg.connect(database_url(database), autocommit=True)
    try:
        first.wait_ready()
        reader.execute('LOCK TABLE "explore"."raw_record" IN ACCESS SHARE MODE')
        run = request_retention(triggered_by="test")

        def waiting_backend():
            # The worker's connection: it holds the retention run's advisory lock and
            # waits for a lock on raw_record.
            row = observer.execute(
                "SELECT waiting.pid FROM pg_locks waiting JOIN pg_locks advisory "
                "ON advisory.pid = waiting.pid AND advisory.locktype = 'advisory' "
                "AND advisory.classid = %s AND advisory.objid = %s AND advisory.granted "
                "WHERE NOT waiting.granted "
                'AND waiting.relation = \'"explore"."raw_record"\'::regclass',
                list(RETENTION_LOCK),
            ).fetchone()
            return row and row[0]

        stuck = wait_for(waiting_backend, "the worker's DETACH waiting for the lock", first)
        # Exported and verified, not yet dropped: the worker dies here.
        assert len(stored_archives()) == 1
        first.kill()
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING
        assert not ArchivedPartition.objects.exists()

        reader.rollback()  # release the lock: the orphaned backend finds its client gone
        wait_for(
            lambda: (
                not observer.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [stuck]
                ).fetchone()
            ),
            "the killed worker's backend ending",
            first,
        )
        # Rolled back whole: every row is still in the partition; only an object is left.
        assert old_partition in existing_partitions(RAW_RECORDS)
        assert raw_rows_of(OLD_MONTH) == original
        assert len(stored_archives()) == 1

        second = spawn_worker(
            queue=queue,
            log_path=tmp_path / "second.log",
            extra_env={
                **env,
                "CELERY_BROKER_VISIBILITY_TIMEOUT": "10",
                "CELERY_TASK_SOFT_TIME_LIMIT": "6",
                "CELERY_TASK_TIME_LIMIT": "8",
            },
            pool="prefork",
            concurrency=1,
            name="second",
        )
        second.wait_ready()
        wait_for(
            lambda: Run.objects.get(pk=run.pk).status != RunStatus.RUNNING,
            "the redelivered run ending",
            second,
        )
    finally:
        reader.close()
        observer.close()
        first.kill()
        if second is not None:
            second.stop()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == ROWS
    assert [item["partition"] for item in run.detail["retired"]] == [old_partition]
    assert Run.objects.count() == 1
    assert old_partition not in existing_partitions(RAW_RECORDS)
    assert raw_rows_of(OLD_MONTH) == []

    # Every row is in the archive exactly once, and the interrupted attempt's object is gone.
    manifest = ArchivedPartition.objects.get()
    assert stored_archives() == [manifest.object_key]
    assert manifest.row_count == ROWS
    with default_storage.open(manifest.object_key, "rb") as stored:
        text = gzip.decompress(decrypt_bytes(stored.read())).decode()  # stored encrypted
    archived_ids = [int(row[0]) for row in list(csv.reader(io.StringIO(text, newline="")))[1:]]
    assert sorted(archived_ids) == original_ids

    # And it comes back intact.
    restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original
