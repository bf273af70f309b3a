"""Long lists in the admin: raw records and landing batches filtered by dataset, batch and
a date range, each filter a constant condition that the plan shows pruned."""

import hashlib
import uuid
from datetime import date, datetime

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from atlas_site.partitions import RAW_RECORDS, create_partition, existing_partitions
from explore.models import LandingBatch, RawRecord
from governance.pipeline.models import Dataset

RAW_LIST = "admin:explore_rawrecord_changelist"
BATCH_LIST = "admin:explore_landingbatch_changelist"
MARCH, JUNE = date(2025, 3, 1), date(2025, 6, 1)


def month_partition(start: date) -> str:
    with connection.cursor() as cursor:
        return create_partition(RAW_RECORDS, cursor, start)


def landed(dataset, received: datetime, lines: int, name: str = "file.jsonl") -> LandingBatch:
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        original_name=name,
        sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        format="jsonl",
        received_at=received,
        status="loaded",
        rows_total=lines,
    )
    records = RawRecord.objects.bulk_create(
        RawRecord(
            received_at=received,
            batch=batch,
            dataset=dataset,
            line_number=line,
            payload={"line": line},
            raw_text=f'{{"line": {line}}}',
        )
        for line in range(1, lines + 1)
    )
    batch.first_raw_id, batch.last_raw_id = records[0].pk, records[-1].pk  # as a load does
    batch.save(update_fields=["first_raw_id", "last_raw_id"])
    return batch


@pytest.fixture
def batches(dataset):
    """Orders: a March batch (2 lines) and a June one (3 lines); returns, other: 1 line."""
    for month in (MARCH, JUNE):
        month_partition(month)
    returns = Dataset.objects.create(slug="returns", name="Returns")
    return {
        "march": landed(dataset, datetime(2025, 3, 10, 12, tzinfo=timezone.UTC), 2, "m.jsonl"),
        "june": landed(dataset, datetime(2025, 6, 20, 12, tzinfo=timezone.UTC), 3, "j.jsonl"),
        "returns": landed(returns, datetime(2025, 6, 21, 12, tzinfo=timezone.UTC), 1),
    }


def listed(response) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def partitions_read(response) -> set[str]:
    plan = response.context["cl"].queryset.explain()
    return {name for name in existing_partitions(RAW_RECORDS) if name in plan}


@pytest.mark.django_db
def test_a_typed_date_range_lists_and_reads_only_its_months(client, steward, batches):
    client.force_login(steward)
    response = client.get(
        reverse(RAW_LIST), {"received_at__gte": "2025-06-01", "received_at__lt": "2025-07-01"}
    )
    assert {record.batch_id for record in listed(response)} == {
        batches["june"].pk,
        batches["returns"].pk,
    }
    assert partitions_read(response) == {RAW_RECORDS.partition_name(JUNE)}
    html = response.content.decode()
    assert 'type="date" name="received_at__gte" value="2025-06-01"' in html


@pytest.mark.django_db
def test_one_bound_alone_is_a_range_too(client, steward, batches):
    client.force_login(steward)
    response = client.get(
        reverse(RAW_LIST), {"received_at__gte": "", "received_at__lt": "2025-04-01"}
    )
    assert {record.batch_id for record in listed(response)} == {batches["march"].pk}
    assert RAW_RECORDS.partition_name(JUNE) not in partitions_read(response)


@pytest.mark.django_db
def test_a_date_that_is_not_one_is_named_in_a_message(client, steward, batches):
    client.force_login(steward)
    response = client.get(reverse(RAW_LIST), {"received_at__gte": "June"})
    assert listed(response) == []
    assert "Received at from: “June” is not a date (YYYY-MM-DD)" in response.content.decode()


@pytest.mark.django_db
def test_a_batch_lists_in_line_order_from_its_own_month(client, steward, batches):
    client.force_login(steward)
    response = client.get(reverse(RAW_LIST), {"batch": str(batches["june"].pk)})
    assert [record.line_number for record in listed(response)] == [1, 2, 3]
    assert partitions_read(response) == {RAW_RECORDS.partition_name(JUNE)}
    # Along the month's primary key over the batch's id range (this tiny table would
    # otherwise be read whole, which says nothing).
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = response.context["cl"].queryset.explain()
    june = batches["june"]
    assert f"{RAW_RECORDS.partition_name(JUNE)}_pkey" in plan
    assert f"(id >= {june.first_raw_id}) AND (id <= {june.last_raw_id})" in plan
    html = response.content.decode()
    assert f'name="batch" value="{batches["june"].pk}"' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [("x12", "Batch id: “x12” is not an id"), ("999999", "There is no landing batch 999999")],
)
def test_a_batch_that_is_not_one_is_named_in_a_message(client, steward, batches, value, message):
    client.force_login(steward)
    response = client.get(reverse(RAW_LIST), {"batch": value})
    assert listed(response) == []
    assert message in response.content.decode()


@pytest.mark.django_db
def test_filters_combine_and_keep_each_other(client, steward, batches, dataset):
    client.force_login(steward)
    params = {"dataset__id__exact": str(dataset.pk), "received_at__gte": "2025-06-01"}
    response = client.get(reverse(RAW_LIST), params)
    assert {record.batch_id for record in listed(response)} == {batches["june"].pk}
    # The typed forms carry the other filters along as hidden inputs.
    html = response.content.decode()
    assert f'type="hidden" name="dataset__id__exact" value="{dataset.pk}"' in html


@pytest.mark.django_db
def test_landing_batches_filter_by_range_and_dataset_and_search_exact_names(
    client, steward, batches, dataset
):
    client.force_login(steward)
    march = {"received_at__gte": "2025-03-01", "received_at__lt": "2025-04-01"}
    assert [b.pk for b in listed(client.get(reverse(BATCH_LIST), march))] == [batches["march"].pk]
    by_dataset = client.get(reverse(BATCH_LIST), {"dataset__id__exact": str(dataset.pk)})
    assert {b.pk for b in listed(by_dataset)} == {batches["march"].pk, batches["june"].pk}
    assert [b.pk for b in listed(client.get(reverse(BATCH_LIST), {"q": "j.jsonl"}))] == [
        batches["june"].pk
    ]
    assert listed(client.get(reverse(BATCH_LIST), {"q": "j.json"})) == []
