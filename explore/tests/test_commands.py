"""manage.py ingest and seed_demo."""

import gzip
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import Dataset

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
        f"batch {batch.pk} loaded: 2 lines, 1 read, 1 could not be read (kept with their errors)",
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


def test_seed_demo_loads_the_examples_and_can_run_again():
    output = run("seed_demo", "--inline")
    dataset = Dataset.objects.get(slug="customers")
    batch = dataset.batches.get()
    assert "customers: created with 10 fields" in output
    assert f"batch {batch.pk} loaded: 22 lines, 20 read, 2 could not be read" in output
    failed = dict(
        RawRecord.objects.filter(batch=batch, payload__isnull=True).values_list(
            "line_number", "parse_error"
        )
    )
    assert failed[17] == "expected 10 fields as in the header, found 9"
    assert "not valid UTF-8" in failed[24]
    multi_line = RawRecord.objects.get(batch=batch, line_number=9)
    assert multi_line.payload["notes"].endswith("12 Harbour Road, Cork")

    again = run("seed_demo", "--inline")
    assert "customers: unchanged" in again
    assert f"already received as batch {batch.pk}" in again
    assert dataset.batches.count() == 1
