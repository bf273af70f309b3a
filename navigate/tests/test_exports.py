"""Facts out of Atlas: `manage.py export_facts` (Parquet, CSV) read back and compared with
SQL over the facts, streamed in chunks; the admin's CSV download masked by clearance."""

import csv
import io
import os
import tracemalloc
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import Group
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from governance.compliance.models import AuditLog
from navigate.exports import export_facts, fact_chunks
from navigate.models import Fact, MetricDefinition
from navigate.reporting import metric_plan
from navigate.tests.test_reporting import orders, revenue  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def facts_by_sql(metric) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT period_start, (dimensions ->> 'paid')::boolean, sum(value), "
            "sum(record_count) FROM navigate.fact WHERE metric_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            [metric.pk],
        )
        return cursor.fetchall()


def test_parquet_is_typed_and_holds_the_facts(revenue, tmp_path, capsys):  # noqa: F811
    target = tmp_path / "revenue.parquet"
    call_command("export_facts", "daily-revenue", "--format", "parquet", "--output", str(target))
    assert f"3 facts of daily-revenue written to {target}; left out: region." in (
        capsys.readouterr().out
    )
    table = pq.read_table(target)
    assert table.schema.names == [
        "period_start",
        "grain",
        "paid",
        "value",
        "record_count",
        "computed_at",
    ]
    assert [field.type for field in table.schema] == [
        pa.date32(),
        pa.string(),
        pa.bool_(),
        pa.decimal128(38, 10),
        pa.int64(),
        pa.timestamp("us", tz="UTC"),
    ]
    grouped = table.group_by(["period_start", "paid"]).aggregate(
        [("value", "sum"), ("record_count", "sum")]
    )
    read_back = sorted(
        (row["period_start"], row["paid"], row["value_sum"], row["record_count_sum"])
        for row in grouped.to_pylist()
    )
    assert read_back == facts_by_sql(revenue)
    entry = AuditLog.objects.filter(object_type="navigate.metricdefinition").latest("id")
    assert entry.after["rows"] == 3 and entry.after["left_out"] == ["region"]


def test_csv_with_since(revenue, tmp_path):  # noqa: F811
    target = tmp_path / "revenue.csv"
    call_command(
        "export_facts", "daily-revenue", "--format", "csv", "--since", "2026-01-02",
        "--output", str(target),
    )  # fmt: skip
    rows = list(csv.reader(target.open(newline="")))
    assert rows[0] == ["period_start", "grain", "paid", "value", "record_count", "computed_at"]
    assert [row[:5] for row in rows[1:]] == [["2026-01-02", "day", "True", "100.0000000000", "1"]]
    expected = [row for row in facts_by_sql(revenue) if row[0] >= date(2026, 1, 2)]
    assert [(date.fromisoformat(r[0]), r[2] == "True", Decimal(r[3])) for r in rows[1:]] == [
        row[:3] for row in expected
    ]


def test_clear_errors(revenue, tmp_path):  # noqa: F811
    target = tmp_path / "x.csv"
    with pytest.raises(CommandError, match="no metric 'nope' \\(metrics: daily-revenue\\)"):
        call_command("export_facts", "nope", "--format", "csv", "--output", str(target))
    with pytest.raises(CommandError, match="'2026-13-01' is not a date as YYYY-MM-DD"):
        call_command("export_facts", "daily-revenue", "--since", "2026-13-01")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("export_facts", "daily-revenue", "--format", "xlsx")
    revenue.dataset.reader_groups.add(Group.objects.create(name="finance"))
    with pytest.raises(CommandError, match="limited to reader groups"):
        call_command("export_facts", "daily-revenue", "--format", "csv", "--output", str(target))
    assert not target.exists()


def _many_facts(metric: MetricDefinition, count: int, start: int = 1) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO navigate.fact (metric_id, period_start, grain, dimensions, "
            "dimension_key, value, record_count, computed_at) "
            "SELECT %s, date '1900-01-01' + i, 'day', jsonb_build_object('paid', i %% 2 = 0), "
            "md5(i::text), i * 1.5, 1, now() FROM generate_series(%s, %s) AS i",
            [metric.pk, start, start + count - 1],
        )


def _peak(metric, chunk_rows: int) -> int:
    # Written to nowhere: an in-memory file would count the output as memory held.
    with Path(os.devnull).open("wb") as sink:
        tracemalloc.start()
        try:
            export_facts(metric=metric, fmt="parquet", out=sink, chunk_rows=chunk_rows)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_facts_stream_in_chunks_in_bounded_memory(revenue, tmp_path):  # noqa: F811
    Fact.objects.filter(metric=revenue).delete()
    _many_facts(revenue, 4_000)
    small = _peak(revenue, chunk_rows=500)
    _many_facts(revenue, 36_000, start=4_001)  # ten times as many facts
    chunks = [len(chunk) for chunk in fact_chunks(metric_plan(revenue), chunk_rows=1_000)]
    assert chunks == [1_000] * 40  # fetched in chunks, never all at once
    large = _peak(revenue, chunk_rows=500)
    assert large < 2 * small, (small, large)

    target = tmp_path / "many.parquet"
    result = export_facts(metric=revenue, fmt="parquet", out=target.open("wb"), chunk_rows=1_000)
    assert (result.rows, result.chunks) == (40_000, 40)
    parquet = pq.ParquetFile(target)
    assert parquet.metadata.num_row_groups == 40  # one row group per chunk
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(value) FROM navigate.fact WHERE metric_id = %s", [revenue.pk])
        assert (
            pq.read_table(target)["value"].to_pylist()
            and sum(pq.read_table(target)["value"].to_pylist()) == cursor.fetchone()[0]
        )


# --- The admin's download --------------------------------------------------------------------


def _download(client, user, metric) -> tuple[int, str]:
    client.force_login(user)
    response = client.post(
        reverse("admin:navigate_metricdefinition_changelist"),
        {"action": "download_facts_as_csv", "_selected_action": [metric.pk]},
    )
    body = b"".join(response.streaming_content).decode() if response.streaming else ""
    return response.status_code, body


def test_the_admin_download_masks_by_clearance_and_is_audited(
    client,
    revenue,  # noqa: F811
    steward,
    viewer,
):
    # A dimension value a spreadsheet would run as a formula.
    Fact.objects.filter(metric=revenue, period_start=date(2026, 1, 2)).update(
        dimensions={"paid": True, "region": "=SUM(A1)"}
    )
    status, cleared = _download(client, steward, revenue)
    assert status == 200
    rows = list(csv.reader(io.StringIO(cleared)))
    assert rows[0] == ["period_start", "grain", "paid", "region", "value", "record_count"]
    assert sorted(row[3] for row in rows[1:]) == ["'=SUM(A1)", "north", "south"]
    status, masked = _download(client, viewer, revenue)
    assert status == 200
    regions = sorted(row[3] for row in list(csv.reader(io.StringIO(masked)))[1:])
    assert "north" not in masked and "south" not in masked and len(regions) == 3
    entries = AuditLog.objects.filter(detail__startswith="Downloaded the facts of metric")
    assert entries.count() == 2
    assert {tuple(entry.after["clearance"]) for entry in entries} == {("internal",), ()}

    # Limited to a group the viewer is not in: refused, nothing downloaded.
    revenue.dataset.reader_groups.add(Group.objects.create(name="finance"))
    status, body = _download(client, viewer, revenue)
    assert status == 302 and body == ""


def test_to_object_storage(revenue, capsys):  # noqa: F811
    call_command(
        "export_facts", "daily-revenue", "--format", "parquet", "--storage", "exports/t/r.parquet"
    )
    assert "3 facts of daily-revenue stored as exports/t/r.parquet." in capsys.readouterr().out
    call_command("export_facts", "daily-revenue", "--format", "csv", "--storage")
    key = capsys.readouterr().out.split(" stored as ")[1].rstrip(".\n")
    assert key.startswith("exports/facts/daily-revenue/daily-revenue-") and key.endswith(".csv")
    try:
        with default_storage.open("exports/t/r.parquet", "rb") as stored:
            assert pq.read_table(stored).num_rows == 3
        with default_storage.open(key, "rb") as stored:
            lines = stored.read().decode().splitlines()
        assert lines[0] == "period_start,grain,paid,value,record_count,computed_at"
        assert len(lines) == 4
    finally:
        default_storage.delete("exports/t/r.parquet")
        default_storage.delete(key)
    with pytest.raises(CommandError, match="not both"):
        call_command("export_facts", "daily-revenue", "--storage", "--output", "x.csv")
