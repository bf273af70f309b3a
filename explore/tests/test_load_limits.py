"""Bounded loads: decompression bombs and other caps, progress while loading, and
out-of-range numbers. Real files through the real loader into PostgreSQL.
"""

import json
import time

import pytest
from django.core.cache import cache

from explore import copy_writer, parsers, services
from explore.models import BatchStatus, LandingBatch, RawRecord
from explore.parsers.csv_reader import LineBlocks
from explore.services import loading
from explore.tests.conftest import gz, raw_rows, store
from governance.pipeline.models import RunStatus

pytestmark = pytest.mark.django_db

HEADER = b"id,name,email\n"


def load(batch):
    run = services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    return run


def csv_lines(count: int, start: int = 1) -> bytes:
    numbers = range(start, start + count)
    return b"".join(b"%d,name %d,n%d@example.com\n" % (i, i, i) for i in numbers)


def assert_failed_naming(batch, run, setting: str) -> None:
    assert batch.status == BatchStatus.FAILED
    assert setting in batch.error and "nothing of it was kept" in batch.error
    assert run.status == RunStatus.FAILED and run.error == batch.error
    assert not RawRecord.objects.filter(batch=batch).exists()
    assert batch.rows_total is None or batch.rows_total == 0
    assert cache.get(loading.PROGRESS_KEY.format(batch.pk)) is None


# --- Decompression bombs ---------------------------------------------------------------------


def test_a_gzip_bomb_past_the_decompressed_cap_fails_and_keeps_no_row(customers, settings):
    """A few kilobytes of gzip that inflate to 12 MB of lines, against a 10 MB cap."""
    settings.ATLAS_MAX_DECOMPRESSED_BYTES = 10 * 1024**2
    settings.ATLAS_INGEST_STATEMENT_ROWS = 50_000  # rows were COPYed before the cap hit
    line = b"1,Ann,ann@example.com\n"
    bomb = gz(HEADER + line * (12 * 1024**2 // len(line)))
    assert len(bomb) < 100_000
    batch = store(customers, bomb, "bomb.csv.gz")

    run = load(batch)

    assert_failed_naming(batch, run, "ATLAS_MAX_DECOMPRESSED_BYTES")
    assert "decompresses to more than 10,485,760 bytes" in batch.error


def test_the_decompressed_cap_defaults_to_20_times_the_upload_limit(customers, settings):
    settings.ATLAS_MAX_UPLOAD_BYTES = 2_000
    settings.ATLAS_MAX_DECOMPRESSED_BYTES = None
    assert services.max_decompressed_bytes() == 40_000
    line = b"1,Ann,ann@example.com\n"
    within = store(customers, gz(HEADER + line * 900), "within.csv.gz")  # 19,814 bytes
    over = store(customers, gz(HEADER + line * 2_000), "over.csv.gz")  # 44,014 bytes
    assert within.size_bytes <= 2_000 and over.size_bytes <= 2_000

    load(within)
    run = load(over)

    assert within.status == BatchStatus.LOADED and within.rows_total == 900
    assert_failed_naming(over, run, "ATLAS_MAX_DECOMPRESSED_BYTES")


def test_a_file_of_gzipped_newlines_stops_at_the_line_cap(customers, settings):
    """The probe's 1 GB of newlines, scaled down: blank lines count against the cap."""
    settings.ATLAS_MAX_LINES_PER_BATCH = 100_000
    batch = store(customers, gz(HEADER + b"1,Ann,ann@example.com\n" + b"\n" * 3_000_000))
    started = time.monotonic()

    run = load(batch)

    assert time.monotonic() - started < 30
    assert_failed_naming(batch, run, "ATLAS_MAX_LINES_PER_BATCH")
    assert "holds more than 100,000 lines" in batch.error


@pytest.mark.parametrize(
    ("fmt", "name", "make"),
    [
        ("csv", "data.csv", lambda n: HEADER + csv_lines(n)),
        ("jsonl", "data.jsonl", lambda n: b"".join(b'{"id": %d}\n' % i for i in range(n))),
        ("json", "data.json", lambda n: json.dumps([{"id": i} for i in range(n)]).encode()),
    ],
)
def test_the_line_cap_is_exact_in_every_format(customers, settings, fmt, name, make):
    settings.ATLAS_MAX_LINES_PER_BATCH = 1_000
    at_cap = store(customers, gz(make(1_000)), f"{name}.gz")
    over = store(customers, gz(make(1_001)), f"over-{name}.gz")

    load(at_cap)
    run = load(over)

    assert at_cap.status == BatchStatus.LOADED and at_cap.rows_total == 1_000
    assert_failed_naming(over, run, "ATLAS_MAX_LINES_PER_BATCH")
    unit = "elements" if fmt == "json" else "lines"
    assert f"holds more than 1,000 {unit}" in over.error


def test_a_load_past_its_time_cap_fails_and_keeps_no_row(customers, settings):
    settings.ATLAS_MAX_LOAD_SECONDS = 0.3
    settings.ATLAS_MAX_LINES_PER_BATCH = 10**9
    settings.ATLAS_INGEST_STATEMENT_ROWS = 20_000  # rows were COPYed before the cap hit
    rows = HEADER + csv_lines(200_000) + b"\n" * 50_000_000
    batch = store(customers, gz(rows), "slow.csv.gz")
    started = time.monotonic()

    run = load(batch)

    assert time.monotonic() - started < 20
    assert_failed_naming(batch, run, "ATLAS_MAX_LOAD_SECONDS")
    assert "the load took longer than 0.3 s" in batch.error


def test_a_file_within_every_cap_loads_as_before(customers, settings):
    settings.ATLAS_MAX_DECOMPRESSED_BYTES = 200_000
    settings.ATLAS_MAX_LINES_PER_BATCH = 5_000
    settings.ATLAS_MAX_LOAD_SECONDS = 60
    batch = store(customers, gz(HEADER + csv_lines(4_000)), "fine.csv.gz")
    load(batch)
    assert batch.status == BatchStatus.LOADED and batch.rows_parsed == 4_000


# --- Progress ----------------------------------------------------------------------------------


def test_progress_moves_by_bytes_and_lines_within_a_copy_statement(
    customers, settings, monkeypatch
):
    """A file of blank lines hands no row to COPY: its progress still moves, by bytes."""
    settings.ATLAS_INGEST_STATEMENT_ROWS = 10**9  # one statement for the whole file
    monkeypatch.setattr(loading, "PROGRESS_INTERVAL", 0)
    monkeypatch.setattr(loading, "READ_BYTES", 64 * 1024)
    monkeypatch.setattr(LineBlocks, "block_bytes", 64 * 1024)
    content = HEADER + csv_lines(10) + b"\n" * 2_000_000
    batch = store(customers, gz(content), "blank.csv.gz")
    seen = []
    real_set = loading._set_progress
    monkeypatch.setattr(
        loading,
        "_set_progress",
        lambda batch_id, **values: (seen.append(values), real_set(batch_id, **values)),
    )

    load(batch)

    assert batch.status == BatchStatus.LOADED and batch.rows_total == 10
    during = seen[1:-1]  # between the claim's zero and the statement's end
    assert len(during) > 10
    content_read = [values["content_bytes"] for values in during]
    lines_read = [values["lines_read"] for values in during]
    assert content_read == sorted(content_read) and content_read[-1] > 1_500_000
    assert lines_read == sorted(lines_read) and lines_read[-1] > 1_500_000
    assert seen[-1]["rows"] == 10 and seen[-1]["content_bytes"] == len(content)


def test_a_killed_load_leaves_no_progress_behind(customers, settings, monkeypatch):
    class WorkerKilled(BaseException):
        """Stands for the worker's process ending: nothing catches it."""

    settings.ATLAS_INGEST_STATEMENT_ROWS = 100
    batch = store(customers, HEADER + csv_lines(1_000))
    real_copy_some = copy_writer._copy_some
    calls = []

    def dies_in_the_third_statement(*args, **kwargs):
        calls.append(1)
        assert cache.get(loading.PROGRESS_KEY.format(batch.pk)) is not None
        if len(calls) == 3:
            raise WorkerKilled
        return real_copy_some(*args, **kwargs)

    monkeypatch.setattr(copy_writer, "_copy_some", dies_in_the_third_statement)
    with pytest.raises(WorkerKilled):
        services.load_batch(batch_id=batch.pk)

    assert LandingBatch.objects.get(pk=batch.pk).status == BatchStatus.LOADING
    assert cache.get(loading.PROGRESS_KEY.format(batch.pk)) is None


def test_progress_a_dead_worker_left_is_replaced_when_the_load_starts_again(customers):
    """A SIGKILLed worker cannot clear its progress: it expires, and a new attempt resets it."""
    batch = store(customers, HEADER + csv_lines(5))
    LandingBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.LOADING)
    loading._set_progress(batch.pk, rows=400_000, bytes_read=10**8)
    key = loading.PROGRESS_KEY.format(batch.pk)
    assert 0 < cache.ttl(key) <= loading.PROGRESS_TTL <= 300

    from explore import selectors

    starts = []
    real_copy = loading._copy_batch

    def copy_batch(batch, run):
        starts.append(selectors.batch_progress(batch=LandingBatch.objects.get(pk=batch.pk)))
        return real_copy(batch, run)

    import unittest.mock

    with unittest.mock.patch.object(loading, "_copy_batch", copy_batch):
        load(batch)
    assert starts[0]["rows"] == 0 and starts[0]["bytes_read"] == 0
    assert batch.status == BatchStatus.LOADED and cache.get(key) is None


# --- Out-of-range numbers ------------------------------------------------------------------------


def test_an_out_of_range_number_in_posted_records_is_one_unreadable_line(
    client, customers, steward
):
    """Found by an outside probe: 1e999 failed the whole batch after the API answered 202."""
    token = services.issue_api_token(user=steward, name="tests", actor=steward)[1]
    body = (
        '[{"id": 1}, {"id": 2, "amount": 1e999}, {"id": 3, "amount": -1e999}, {"id": NaN}, '
        '{"id": 5}]'
    )
    response = client.post(
        "/api/datasets/customers/records",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 202, response.content
    batch = LandingBatch.objects.get(pk=response.json()["id"])

    load(batch)

    assert batch.status == BatchStatus.LOADED
    assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == (5, 2, 3)
    rows = {line: (payload, text, error) for line, payload, text, error in raw_rows(batch)}
    assert rows[1][0] == {"id": 1} and rows[5][0] == {"id": 5}
    assert rows[2] == (None, '{"id": 2, "amount": 1e999}', parsers.OUT_OF_RANGE_ERROR)
    assert rows[3] == (None, '{"id": 3, "amount": -1e999}', parsers.OUT_OF_RANGE_ERROR)
    assert rows[4][0] is None and "NaN is not valid JSON" in rows[4][2]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.jsonl", b'{"id": 1}\n{"id": 2, "n": 1e999}\n{"id": 3, "n": [-1E400]}\n{"id": 4}\n'),
        ("data.json", b'[{"id": 1}, {"id": 2, "n": 1e999}, {"id": 3, "n": [-1E400]}, {"id": 4}]'),
    ],
)
def test_an_out_of_range_number_in_an_upload_is_one_unreadable_line(customers, name, content):
    batch = store(customers, content, name)
    load(batch)
    assert batch.status == BatchStatus.LOADED
    assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == (4, 2, 2)
    errors = [error for _, payload, _, error in raw_rows(batch) if payload is None]
    assert errors == [parsers.OUT_OF_RANGE_ERROR] * 2
