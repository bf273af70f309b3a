"""manage.py ingest and seed_demo (orchestration's commands), with the ingestion fixtures."""

import gzip
import os
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from atlas_site.testing.celery_worker import database_url
from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import Dataset, Run, RunKind

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"id,name,email\n1,Ann,ann@example.com\n2,Bob\n")
    return path


def test_ingest_prints_the_batch_id_and_queues_the_load(
    customers, csv_file, sent_loads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        output = run("ingest", "customers", str(csv_file))
    batch = LandingBatch.objects.get()
    assert output == f"batch {batch.pk}\n"
    assert sent_loads == [batch.pk]
    assert batch.status == BatchStatus.STORED


def test_ingest_inline_prints_the_outcome(customers, csv_file, steward):
    output = run("ingest", "customers", str(csv_file), "--inline", "--user", steward.username)
    batch = LandingBatch.objects.get()
    assert output.splitlines() == [
        f"batch {batch.pk}",
        f"batch {batch.pk} loaded: 2 records, 1 read, 1 could not be read (kept with their errors)",
    ]
    assert batch.uploaded_by == steward


def test_ingest_gzip_with_explicit_format(customers, tmp_path):
    path = tmp_path / "export.data"
    path.write_bytes(gzip.compress(b'{"id": 1}\n{"id": 2}\n'))
    run("ingest", "customers", str(path), "--format", "jsonl", "--inline")
    assert LandingBatch.objects.get().rows_parsed == 2


def test_ingest_refusals_are_command_errors(customers, csv_file, tmp_path):
    with pytest.raises(CommandError, match="no dataset 'nope'"):
        run("ingest", "nope", str(csv_file))
    with pytest.raises(CommandError, match="no file at"):
        run("ingest", "customers", str(tmp_path / "missing.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match="refused: the file is empty"):
        run("ingest", "customers", str(empty))
    first = run("ingest", "customers", str(csv_file)).split()[1]
    with pytest.raises(CommandError, match=f"already received as batch {first}"):
        run("ingest", "customers", str(csv_file))


def test_ingest_wait_without_a_worker_times_out_clearly(customers, csv_file):
    with pytest.raises(CommandError, match="is a Celery worker running"):
        run("ingest", "customers", str(csv_file), "--wait", "--timeout", "0.5")


def test_ingest_wait_without_any_worker_says_so_within_seconds(customers, csv_file, settings):
    import uuid

    from atlas_site.celery import app

    queue = settings.ATLAS_INGEST_QUEUE = f"atlas-nobody-listens-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        with pytest.raises(CommandError, match="no Celery worker consumes the queue") as refused:
            run("ingest", "customers", str(csv_file), "--wait")  # default timeout: an hour
    finally:
        with app.connection_for_write() as broker:
            broker.default_channel.queue_delete(queue)  # the load nobody will take
    assert time.monotonic() - started < 60
    assert "--inline" in str(refused.value)
    assert LandingBatch.objects.get().status == BatchStatus.STORED  # kept, still queued


def test_seed_demo_loads_the_examples_and_can_run_again():
    output = run("seed_demo", "--inline")
    dataset = Dataset.objects.get(slug="customers")
    batch = dataset.batches.get()
    assert "customers: created with 10 fields" in output
    # Two metrics, so that facts appear after the first promotion.
    assert set(dataset.metrics.values_list("slug", flat=True)) == {
        "customers-signups-by-country",
        "customers-lifetime-value-by-segment",
    }
    # 24 physical lines for 22 records: a quoted address spans two lines, and a blank
    # line is a line too.
    assert f"batch {batch.pk} loaded: 24 lines, 22 records, 20 read, 2 could not be read" in output
    failed = dict(
        RawRecord.objects.filter(batch=batch, payload__isnull=True).values_list(
            "line_number", "parse_error"
        )
    )
    assert failed[17] == "expected 10 fields as in the header, found 9"
    assert "not valid UTF-8" in failed[24]
    multi_line = RawRecord.objects.get(batch=batch, line_number=9)
    assert multi_line.payload["notes"].endswith("12 Harbour Road, Cork")

    from chart.services import promote_to_chart
    from navigate.models import Fact
    from navigate.services import promote_to_navigate

    promote_to_chart(dataset=dataset, triggered_by="test")
    promote_to_navigate(dataset=dataset, triggered_by="test")
    for metric in dataset.metrics.all():
        assert Fact.objects.filter(metric=metric).exists(), metric.slug

    again = run("seed_demo", "--inline")
    assert "customers: unchanged" in again
    assert "metric " not in again and dataset.metrics.count() == 2
    assert f"already received as batch {batch.pk}" in again
    assert dataset.batches.count() == 1


@pytest.mark.django_db(transaction=True)
def test_ingest_during_a_redis_outage_exits_non_zero_with_one_line(tmp_path):
    """The command runs in a process of its own whose broker (and cache) is a closed port."""
    Dataset.objects.create(slug="outage", name="Outage", auto_promote=False)
    path = tmp_path / "outage.csv"
    path.write_bytes(b"id,name\n1,Ann\n2,Bob\n")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "atlas_site.settings.test",
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "REDIS_URL": "redis://127.0.0.1:9/0",  # discard: nothing answers
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "ingest", "outage", str(path)],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode != 0, result.stdout + result.stderr
    batch = LandingBatch.objects.get(dataset__slug="outage")
    assert result.stdout == f"batch {batch.pk}\n"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"CommandError: batch {batch.pk} is stored, but its load could not")
    assert "broker (Redis) cannot be reached" in lines[0]
    assert batch.status == BatchStatus.STORED  # the tick or "Load again" sends it later
    assert not Run.objects.filter(kind=RunKind.INGEST).exists()
    assert elapsed < 60
    # The subprocess stored the file in the test settings' MEDIA_ROOT.
    (django_settings.BASE_DIR / "var" / "test-media" / batch.file.name).unlink()
