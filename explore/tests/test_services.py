"""Storing and loading batches: what lands, what is refused, and loads that are run twice."""

import hashlib
import importlib
import io
import json

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection

from atlas_site import advisory_locks
from explore import copy_writer, selectors, services
from explore.models import BatchStatus, LandingBatch, RawRecord
from explore.services import loading
from explore.tests.conftest import gz, raw_rows, store
from governance.compliance.envelope import decrypt_bytes
from governance.compliance.models import AuditLog
from governance.pipeline.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db

CSV = (
    b"id,name,email\n"
    b"1,Ann,ann@example.com\n"
    b"2,Bob\n"  # one field short
    b"3,Zo\xeb,zoe@example.com\n"  # Latin-1, not UTF-8
    b"\n"
    b'4,"Doe, Jane",jane@example.com\n'
)


def load(batch):
    run = services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    return run


def test_a_csv_file_lands_whole(customers, sent_loads, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        batch = store(customers, CSV, "customers.csv")
    assert sent_loads == [batch.pk]  # queued once the batch committed
    assert batch.status == BatchStatus.STORED
    assert batch.sha256 == hashlib.sha256(CSV).hexdigest()
    assert (batch.format, batch.compression, batch.size_bytes) == ("csv", "none", len(CSV))
    assert batch.file.name.startswith(
        f"landing/customers/{batch.received_at:%Y/%m/%d}/{batch.key}/customers"
    )
    with default_storage.open(batch.file.name, "rb") as stored:
        assert decrypt_bytes(stored.read()) == CSV  # stored encrypted

    run = load(batch)

    assert batch.status == BatchStatus.LOADED
    assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == (4, 2, 2)
    rows = raw_rows(batch)
    assert [row[0] for row in rows] == [2, 3, 4, 6]
    assert rows[0][1] == {"id": "1", "name": "Ann", "email": "ann@example.com"}
    assert rows[1] == (3, None, "2,Bob", "expected 3 fields as in the header, found 2")
    assert rows[2][1] is None and rows[2][2] == "3,Zo\\xeb,zoe@example.com"
    assert "not valid UTF-8" in rows[2][3]
    assert rows[3][1]["name"] == "Doe, Jane"
    record = RawRecord.objects.get(batch=batch, line_number=2)
    expected = json.dumps(record.payload, sort_keys=True, separators=(",", ":"))
    assert record.payload_hash == hashlib.sha256(expected.encode()).hexdigest()
    assert record.dataset_id == customers.pk and record.received_at == batch.received_at

    assert run.kind == RunKind.INGEST and run.status == RunStatus.SUCCEEDED
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (4, 2, 2)
    assert run.detail["batch_id"] == batch.pk and run.detail["blank_lines"] == 1
    assert run.started_at and run.finished_at
    step = run.steps.get()
    assert step.status == RunStatus.SUCCEEDED and step.rows == 4
    audits = AuditLog.objects.filter(object_id__in=[str(batch.pk), str(run.pk)])
    assert {(a.object_type, a.action) for a in audits} >= {
        ("explore.landingbatch", "create"),
        ("pipeline.run", "run"),
    }


def test_gzip_and_each_format(customers):
    jsonl = b'{"id": 1, "name": "Ann"}\n{"id": 2,\n'
    array = b'[{"id": 1}, {"id": 2, "tags": ["a", "b"]}, "nope"]'
    for content, name, expected in [
        (gz(CSV), "customers.csv.gz", (4, 2, 2)),
        (jsonl, "events.jsonl", (2, 1, 1)),
        (gz(array), "export.json.gz", (3, 2, 1)),
    ]:
        batch = store(customers, content, name)
        load(batch)
        assert batch.status == BatchStatus.LOADED, batch.error
        assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == expected, name
    array_batch = LandingBatch.objects.get(original_name="export.json.gz")
    assert array_batch.compression == "gzip"
    assert raw_rows(array_batch)[1][1] == {"id": 2, "tags": ["a", "b"]}
    assert raw_rows(array_batch)[1][2] == '{"id": 2, "tags": ["a", "b"]}'


def test_text_postgres_cannot_store_becomes_a_failed_line(customers):
    content = b'{"id": 1, "note": "nul \\u0000 here"}\n{"id": 2, "x": "\\ud800"}\n{"id": 3}\n'
    batch = store(customers, content, "odd.jsonl")
    load(batch)
    rows = raw_rows(batch)
    assert rows[0][1] is None and rows[0][3] == copy_writer.NUL_ERROR
    assert rows[1][1] is None and rows[1][3] == copy_writer.SURROGATE_ERROR
    assert rows[2][1] == {"id": 3}
    nul_in_csv = store(customers, b"id,name\n1,a\x00b\n", "nul.csv")
    load(nul_in_csv)
    assert raw_rows(nul_in_csv) == [(2, None, "1,a\\x00b", copy_writer.NUL_ERROR)]


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"", "empty.csv", "the file is empty"),
        (gz(b""), "empty.csv.gz", "the file is empty"),
        (b"id,name,email\n", "header.csv", "header row but no records"),
        (b"1,Ann,ann@example.com\n2,Bob,bob@example.com\n", "noheader.csv", "header row missing"),
        (b"id\tname\n1\tAnn\n", "notes.txt", "cannot tell the format"),
        (b'{"id": 1}', "one.json", "must hold an array"),
        (b"\x1f\x8b\x08\x00garbage", "broken.csv.gz", "gzip"),
    ],
)
def test_refused_files_write_nothing(customers, settings, content, filename, message):
    with pytest.raises(services.IngestError, match=message):
        store(customers, content, filename)
    assert not LandingBatch.objects.exists()
    assert not (settings.MEDIA_ROOT / "landing").exists()


def test_a_file_over_the_size_limit_is_refused(customers, settings):
    settings.ATLAS_MAX_UPLOAD_BYTES = 50
    with pytest.raises(services.FileTooLargeError, match=r"the limit .* is 50 bytes"):
        store(customers, CSV, "big.csv")
    assert not LandingBatch.objects.exists()


def test_the_same_file_twice_names_the_batch_holding_it(customers, settings):
    first = store(customers, CSV, "customers.csv")
    with pytest.raises(services.DuplicateFileError, match=f"already received as batch {first.pk}"):
        store(customers, CSV, "copy-of-customers.csv")
    assert LandingBatch.objects.count() == 1
    stored = list((settings.MEDIA_ROOT / "landing").rglob("*.csv"))
    assert len(stored) == 1


def test_an_inactive_dataset_takes_no_file(customers):
    customers.is_active = False
    customers.save()
    with pytest.raises(services.IngestError, match="inactive"):
        store(customers, CSV)


def test_a_redelivered_task_loads_nothing_twice(customers):
    batch = store(customers, CSV)
    first = load(batch)
    assert services.load_batch(batch_id=batch.pk) is None
    assert RawRecord.objects.filter(batch=batch).count() == 4
    assert Run.objects.filter(kind=RunKind.INGEST).count() == 1
    assert first.status == RunStatus.SUCCEEDED


def test_a_load_records_its_raw_id_range_and_a_batch_reads_only_its_own_rows(customers):
    first = store(customers, CSV, "first.csv")
    load(first)
    ids = sorted(RawRecord.objects.filter(batch=first).values_list("id", flat=True))
    assert (first.first_raw_id, first.last_raw_id) == (ids[0], ids[-1])

    # Loads of other datasets running at the same time take ids inside a batch's range:
    # here a second batch's rows sit inside the first's (widened) range.
    second = store(customers, CSV.replace(b"Ann", b"Ana"), "second.csv")
    load(second)
    assert second.first_raw_id > first.last_raw_id
    LandingBatch.objects.filter(pk=first.pk).update(last_raw_id=second.last_raw_id)
    first.refresh_from_db()

    assert sorted(selectors.raw_records_of(first).values_list("id", flat=True)) == ids
    assert [line["line_number"] for line in selectors.failed_lines(batch=first)] == [3, 4]
    assert selectors.raw_records_of(second).count() == 4


def test_the_migration_gives_batches_loaded_before_it_their_range(customers, land):
    fill_ranges = importlib.import_module("explore.migrations.0003_batch_raw_id_range").FILL_RANGES
    records = land(customers, [{"id": 1}, {"id": 2}, "broken"])
    batch = records[0].batch
    LandingBatch.objects.filter(pk=batch.pk).update(first_raw_id=None, last_raw_id=None)
    with connection.cursor() as cursor:
        cursor.execute(fill_ranges)
    batch.refresh_from_db()
    assert (batch.first_raw_id, batch.last_raw_id) == (records[0].pk, records[-1].pk)


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def test_a_load_killed_mid_way_keeps_nothing_and_loads_exactly_once_again(
    customers, settings, monkeypatch
):
    settings.ATLAS_INGEST_STATEMENT_ROWS = 2  # several COPY statements
    content = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(10))
    batch = store(customers, content)
    real_copy_some = copy_writer._copy_some
    calls = []

    def dies_after_the_first_statement(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise WorkerKilled
        return real_copy_some(*args, **kwargs)

    monkeypatch.setattr(copy_writer, "_copy_some", dies_after_the_first_statement)
    with pytest.raises(WorkerKilled):
        services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LOADING  # as a dead worker leaves it
    assert not RawRecord.objects.filter(batch=batch).exists()
    interrupted = Run.objects.get(kind=RunKind.INGEST)
    assert interrupted.status == RunStatus.RUNNING

    monkeypatch.setattr(copy_writer, "_copy_some", real_copy_some)
    run = load(batch)  # the re-delivered task

    assert batch.status == BatchStatus.LOADED and batch.rows_total == 10
    lines = list(RawRecord.objects.filter(batch=batch).values_list("line_number", flat=True))
    assert sorted(lines) == list(range(2, 12))
    assert run.detail["copy_statements"] >= 5
    interrupted.refresh_from_db()
    assert interrupted.status == RunStatus.FAILED and "interrupted" in interrupted.error


def test_a_batch_another_worker_is_loading_is_left_to_it(customers):
    batch = store(customers, CSV)
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [advisory_locks.LOAD_BATCH, batch.pk])
        assert services.load_batch(batch_id=batch.pk) is None
        batch.refresh_from_db()
        assert batch.status == BatchStatus.STORED
    finally:
        with other.cursor() as cursor:  # at once: a closed session's locks go a moment later
            cursor.execute("SELECT pg_advisory_unlock_all()")
        other.close()
    load(batch)
    assert batch.status == BatchStatus.LOADED


def test_a_failed_load_keeps_its_file_and_can_be_retried(
    customers, sent_loads, django_capture_on_commit_callbacks, steward
):
    batch = store(customers, gz(CSV), "customers.csv.gz")
    stored = default_storage.open(batch.file.name, "rb").read()
    # Damage the stored object after it was accepted (a bad disk, a cut transfer).
    default_storage.delete(batch.file.name)
    default_storage.save(batch.file.name, io.BytesIO(stored[:40]))

    run = load(batch)

    assert batch.status == BatchStatus.FAILED
    assert "the stored file cannot be decrypted: the object is truncated" in batch.error
    assert run.status == RunStatus.FAILED and run.error == batch.error
    assert run.rows_in == 0
    assert not RawRecord.objects.filter(batch=batch).exists()
    assert default_storage.exists(batch.file.name)
    assert AuditLog.objects.filter(object_type="pipeline.run", object_id=str(run.pk)).exists()
    assert services.load_batch(batch_id=batch.pk) is None  # failed stays failed until retried

    default_storage.delete(batch.file.name)
    default_storage.save(batch.file.name, io.BytesIO(stored))
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_batch(batch=batch, actor=steward)
    assert sent_loads == [batch.pk]
    assert AuditLog.objects.filter(detail="load retried", object_id=str(batch.pk)).exists()
    load(batch)
    assert batch.status == BatchStatus.LOADED and batch.rows_total == 4
    with pytest.raises(services.BatchNotRetryableError, match="is loaded"):
        services.retry_batch(batch=batch, actor=steward)


def test_progress_is_visible_while_loading(customers, monkeypatch):
    from explore import selectors

    batch = store(customers, CSV)
    seen = []
    real_set = loading._set_progress

    def spy(batch_id, **values):
        real_set(batch_id, **values)
        loading = LandingBatch.objects.get(pk=batch_id)
        seen.append(selectors.batch_status(batch=loading)["progress"])

    monkeypatch.setattr(loading, "_set_progress", spy)
    load(batch)
    assert seen and seen[-1]["rows"] == 4 and seen[-1]["fraction"] == 1.0
    assert cache.get(loading.PROGRESS_KEY.format(batch.pk)) is None


def test_posted_records_are_stored_as_a_json_array(customers):
    body = json.dumps([{"id": 1, "name": "Ann"}, {"id": 2}]).encode()
    batch = services.store_records(dataset=customers, body=body, actor="tests")
    assert batch.format == "json" and batch.original_name == "records.json"
    load(batch)
    assert batch.rows_parsed == 2


def test_api_tokens_store_only_a_digest(steward):
    token, plain = services.issue_api_token(user=steward, name="ERP export", actor=steward)
    assert plain.startswith("atl_") and len(plain) > 40
    assert token.prefix == plain[:8]
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pipeline.api_token WHERE token_hash = %s", [plain])
        assert cursor.fetchone()[0] == 0
    assert not AuditLog.objects.filter(after__icontains=plain).exists()
    services.revoke_api_token(token=token, actor=steward)
    assert token.revoked_at is not None


def test_a_store_without_queueing_leaves_the_load_to_the_caller(
    customers, sent_loads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        batch = store(customers, CSV, queue=False)
    assert sent_loads == [] and batch.status == BatchStatus.STORED
