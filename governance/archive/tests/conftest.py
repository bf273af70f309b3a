"""Fixtures of the archive tests: partitions with rows in the past, stored archives."""

import hashlib
import uuid
from datetime import UTC, date, datetime

import pytest
from django.db import connection

from atlas_site.partitions import create_partition

OLD_MONTH = date(2024, 1, 1)  # far enough back for any policy in these tests


@pytest.fixture(autouse=True)
def _own_media_root(request, settings, tmp_path):
    # Archives go to a folder of the test's own (worker tests share the worker's).
    if not request.node.get_closest_marker("worker"):
        settings.MEDIA_ROOT = tmp_path / "media"


def make_partition(table, start: date) -> str:
    with connection.cursor() as cursor:
        return create_partition(table, cursor, start)


def land_raw(dataset, rows: int, *, at: datetime, label: str = "") -> list:
    """`rows` raw records of `dataset` received at `at` (with awkward text on purpose)."""
    from explore.models import LandingBatch, RawRecord

    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        format="jsonl",
        received_at=at,
        status="loaded",
        rows_total=rows,
    )
    return RawRecord.objects.bulk_create(
        RawRecord(
            received_at=at,
            batch=batch,
            dataset=dataset,
            line_number=line,
            payload={"n": line, "text": f'quote " comma , {label}', "none": None}
            if line % 7
            else None,
            raw_text=f'{{"n": {line}}}\nsecond line, "quoted"\r\n' if line % 5 == 0 else "",
            parse_error="" if line % 7 else "broken\ttab",
        )
        for line in range(1, rows + 1)
    )


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def raw_rows_of(partition_start: date) -> list[tuple]:
    """Every column of the raw records received in that month, in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT * FROM "explore"."raw_record" WHERE received_at >= %s AND received_at < %s '
            "ORDER BY id",
            [
                at(partition_start, 0),
                at(partition_start.replace(month=partition_start.month + 1), 0),
            ],
        )
        return cursor.fetchall()


@pytest.fixture
def other_dataset(db):
    from governance.pipeline.models import Dataset

    return Dataset.objects.create(slug="invoices", name="Invoices", business_key=["id"])
