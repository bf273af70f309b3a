"""Promotion chunks bounded by bytes as well as rows: wide records make smaller chunks."""

from chart.chunks import ChunkReader, read_chunk
from chart.models import ChartRecord, QuarantinedRecord
from chart.services import promote_to_chart
from governance.pipeline.models import RunStatus

NOTE = "x" * 900  # a wide free-text value: each record is about 1 KB of JSON


def record(number: int, note: str = NOTE) -> dict:
    return {
        "id": str(number),
        "email": f"p{number}@example.com",
        "tier": "gold",
        "amount": "10.50",
        "signup": "2026-01-02",
        "notes": note,
    }


def raw_rows(dataset) -> list:
    """Every raw record of the dataset as the reader returns them: (id, payload text, error)."""
    return read_chunk(dataset_id=dataset.pk, after_id=0, max_rows=10_000, max_bytes=10**12)


def test_a_chunk_ends_at_its_byte_budget_and_keeps_at_least_one_record(customers, land):
    land(customers, [record(n) for n in range(1, 11)])
    rows = raw_rows(customers)
    ids = [raw_id for raw_id, _, _ in rows]
    sizes = [len(payload) for _, payload, _ in rows]
    assert len(ids) == 10 and min(sizes) > 900

    def read(max_bytes: int, max_rows: int = 100) -> list[int]:
        chunk = read_chunk(
            dataset_id=customers.pk, after_id=ids[0] - 1, max_rows=max_rows, max_bytes=max_bytes
        )
        return [raw_id for raw_id, _, _ in chunk]

    # A record is taken while the records before it are under the budget.
    assert read(max_bytes=sizes[0] + sizes[1] + 1) == ids[:3]
    assert read(max_bytes=sizes[0] + sizes[1]) == ids[:2]
    assert read(max_bytes=1) == ids[:1]  # a record over the budget is a chunk alone
    assert read(max_bytes=10**9, max_rows=4) == ids[:4]
    assert read(max_bytes=10**9) == ids


def test_the_reader_asks_for_rows_by_the_width_it_has_seen(customers, land):
    land(customers, [record(n, note="") for n in range(1, 41)] + [record(n) for n in range(41, 81)])
    reader = ChunkReader(dataset_id=customers.pk, chunk_size=30, chunk_bytes=5_000)
    chunks, after = [], 0
    while rows := reader.read(after_id=after):
        chunks.append(rows)
        after = rows[-1][0]
    sizes = [sum(len(payload) for _, payload, _ in rows) for rows in chunks]
    counts = [len(rows) for rows in chunks]
    assert sum(counts) == 80
    assert counts[0] == 30  # narrow records: the row bound ends the chunk
    assert max(counts[-3:]) <= 5  # wide ones (about 1 KB): the byte bound does
    # Each chunk stops once its bytes reach the budget: only its last record crosses it.
    for rows, size in zip(chunks, sizes, strict=True):
        assert size - len(rows[-1][1]) < 5_000
    # Once the width is known, no more than twice the rows that fit are cast and measured.
    assert reader.rows_asked <= 2 * (5_000 // 1_000 + 1)


def test_a_promotion_of_wide_records_takes_more_chunks_and_each_record_once(customers, land):
    land(customers, [record(n) for n in range(1, 201)] + ["not json"])
    run = promote_to_chart(
        dataset=customers, triggered_by="test", chunk_size=5000, chunk_bytes=20_000
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    # ~1 KB a record, 20 KB a chunk: about 20 records a chunk, not all 201 in one.
    assert 9 <= run.detail["chunks"] <= 11
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (201, 200, 1)
    promoted = list(ChartRecord.objects.filter(dataset=customers).values_list("raw_record_id"))
    assert len(promoted) == len(set(promoted)) == 200
    assert QuarantinedRecord.objects.filter(dataset=customers).count() == 1


def test_narrow_records_keep_chunks_of_the_row_bound(customers, land):
    land(customers, [record(n, note="hi") for n in range(1, 101)])
    run = promote_to_chart(dataset=customers, triggered_by="test", chunk_size=25)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.detail["chunks"] == 4
    assert run.rows_promoted == 100
