"""A dataset's page (overview, promote, retry) and a run's page (steps, timing, failed rules)."""

import hashlib
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chart.services import promote_to_chart
from explore.models import BatchStatus, LandingBatch
from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import (
    DatasetField,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    Transform,
)

GOOD = {"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "10.50"}


def row(**changes):
    return {**GOOD, **changes}


@pytest.fixture
def promoted(customers, land):
    land(
        customers,
        [
            row(),
            row(id="2", notes="reach me at grace@example.org"),
            row(id="3", tier="bronze", notes="card 4111 1111 1111 1111"),
        ],
    )
    run = promote_to_chart(dataset=customers, triggered_by="test")
    LineageEdge.objects.create(
        dataset=customers,
        source_layer=Layer.CHART,
        source_field="amount",
        target_layer=Layer.NAVIGATE,
        target_name="revenue",
        transform=Transform.AGGREGATED,
    )
    return run


def dataset_page(dataset, name="change"):
    return reverse(f"admin:pipeline_dataset_{name}", args=[dataset.pk])


def failed_batch(dataset) -> LandingBatch:
    return LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        format="csv",
        original_name="broken.csv",
        received_at=timezone.now(),
        status=BatchStatus.FAILED,
        error="the file could not be read",
    )


def test_the_dataset_page_shows_contract_runs_quality_pii_and_lineage(
    client, steward, customers, promoted
):
    client.force_login(steward)
    response = client.get(dataset_page(customers))
    assert response.status_code == 200
    content = response.content.decode()
    # Contract, with types and classifications.
    assert 'id="dataset-contract"' in content
    assert "Email address" in content and "confidential" in content
    # Latest runs, linked to their pages, with counts.
    assert reverse("admin:pipeline_run_change", args=[promoted.pk]) in content
    assert [item["run"].pk for item in response.context["recent_runs"]] == [promoted.pk]
    # Quality trend: a sparkline per measured dimension.
    trend = {row["code"]: row for row in response.context["quality_trend"]}
    assert {"overall", "validity"} <= set(trend)
    assert "<polyline" in content
    # PII findings by field and type, masked.
    pii = {(item.field_name, item.pii_type) for item in response.context["pii_summary"]}
    assert ("notes", "email") in pii
    assert "grace@example.org" not in content and "4111 1111 1111 1111" not in content
    # Lineage both ways.
    assert "explore.email → chart.email" in content
    assert "chart.amount → navigate.revenue" in content
    assert 'id="dataset-promote"' in content
    assert 'id="dataset-retry"' not in content  # nothing failed
    assert "<script>" not in content


@pytest.mark.parametrize("reader", ["steward", "officer"])  # an editor; a reader who only views
def test_the_dataset_page_reads_the_same_queries_whatever_its_number_of_fields(
    client, request, reader, promoted, customers
):
    """No query per contract field: each row's name (its dataset), its level read-only,
    its level's choices."""
    client.force_login(request.getfixturevalue(reader))

    def queries() -> int:
        client.get(dataset_page(customers))  # warm: sessions, permissions, caches
        with CaptureQueriesContext(connection) as captured:
            response = client.get(dataset_page(customers))
        assert response.status_code == 200
        return len(captured.captured_queries)

    before = queries()
    internal = ClassificationLevel.objects.get(name="internal")
    for position in range(10, 22):
        DatasetField.objects.create(
            dataset=customers, name=f"extra_{position}", position=position, classification=internal
        )
    assert queries() == before


def test_promote_now_queues_a_run(client, steward, customers, land):
    client.force_login(steward)
    # Nothing landed: nothing to promote, and no run for it.
    response = client.post(dataset_page(customers, "promote"), follow=True)
    assert "Nothing new to promote." in response.content.decode()
    assert not Run.objects.filter(dataset=customers).exists()

    land(customers, [{"id": "1", "email": "a@example.com", "tier": "gold"}])
    response = client.post(dataset_page(customers, "promote"), follow=True)
    run = Run.objects.get(dataset=customers)
    assert (run.kind, run.status, run.triggered_by) == (
        RunKind.PROMOTE_CHART,
        RunStatus.QUEUED,
        "admin",
    )
    link = f'<a href="{reverse("admin:pipeline_run_change", args=[run.pk])}">run {run.pk}</a>'
    assert f"Queued {link}" in response.content.decode()


def test_retry_loads_failed_batches_again_and_promotes_after_a_failed_run(
    client, steward, customers
):
    batch = failed_batch(customers)
    failed = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        status=RunStatus.FAILED,
        triggered_by="test",
        error="boom",
    )
    client.force_login(steward)
    content = client.get(dataset_page(customers)).content.decode()
    assert "Retry 1 failed load and the failed promotion" in content
    assert "broken.csv" in content

    client.post(dataset_page(customers, "retry"))
    batch.refresh_from_db()
    assert batch.status == BatchStatus.STORED
    retry = Run.objects.exclude(pk=failed.pk).get(dataset=customers)
    assert (retry.status, retry.triggered_by) == (RunStatus.QUEUED, "admin-retry")


def test_a_viewer_may_not_promote_or_retry(client, viewer, customers):
    failed_batch(customers)
    client.force_login(viewer)
    content = client.get(dataset_page(customers)).content.decode()
    assert 'id="dataset-promote"' not in content and 'id="dataset-retry"' not in content
    assert client.post(dataset_page(customers, "promote")).status_code == 403
    assert client.post(dataset_page(customers, "retry")).status_code == 403
    assert client.get(dataset_page(customers, "retry")).status_code == 405
    assert not Run.objects.exists()
    assert LandingBatch.objects.get(dataset=customers).status == BatchStatus.FAILED


def test_the_run_page_shows_counts_timing_steps_and_failed_rules_masked(
    client, steward, customers, land
):
    land(customers, [row(), row(id="2", tier="platinum 4111 1111 1111 1111")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    client.force_login(steward)
    response = client.get(reverse("admin:pipeline_run_change", args=[run.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="run-rows-in">2<' in content
    assert 'id="run-rows-quarantined">1' in content
    assert f"?run={run.pk}" in content  # its quarantined records
    assert "validate, protect and promote" in content
    assert response.context["overview"].duration is not None
    [failed] = response.context["failed_rules"]
    assert failed["check"].rule.kind == "allowed_values"
    assert failed["check"].failed_count == 1
    # The failing value held a card number: the page shows it masked.
    assert "4111 1111 1111 1111" not in content
    assert failed["examples"][0]["raw_record"] is not None


def test_a_failed_run_shows_its_error(client, steward, customers):
    run = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        status=RunStatus.FAILED,
        triggered_by="test",
        error="quality score 0.5 is below the threshold",
    )
    client.force_login(steward)
    response = client.get(reverse("admin:pipeline_run_change", args=[run.pk]))
    assert b'id="run-error"' in response.content
    assert b"quality score 0.5 is below the threshold" in response.content


def test_a_run_that_quarantined_most_of_its_records_says_so(client, steward, customers, land):
    land(customers, [row(), row(id="2", tier="bronze"), row(id="3", tier="wood")])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert (run.status, run.rows_in, run.rows_quarantined) == (RunStatus.SUCCEEDED, 3, 2)
    assert run.mostly_quarantined
    client.force_login(steward)
    content = client.get(reverse("admin:pipeline_run_change", args=[run.pk])).content.decode()
    assert 'id="run-mostly-quarantined"' in content
    assert "2 of 3 (67%) went to quarantine" in content
    # Half or less held back: an ordinary success.
    run.rows_quarantined = 1
    assert not run.mostly_quarantined


def test_durations_and_sparklines_read_well():
    from datetime import timedelta
    from decimal import Decimal

    from governance.pipeline.admin.formatting import duration_text, spark_end, sparkline

    assert duration_text(None) == "—"
    assert duration_text(timedelta(seconds=0.1234)) == "0.12 s"
    assert duration_text(timedelta(minutes=3, seconds=5)) == "3 min 05 s"
    assert duration_text(timedelta(hours=2, minutes=1)) == "2 h 01 min"
    # Scores 0..1 from bottom to top, left to right; a missing score leaves a gap.
    assert sparkline([Decimal("0"), None, Decimal("1")]) == "0.0,28.0 120.0,0.0"
    assert spark_end([Decimal("0.5"), None]) == ("0.0", "14.0")
    assert spark_end([None]) is None


def test_the_upload_page_follows_a_batch_through_its_promotion(client, steward, customers):
    import io

    from explore import services as explore_services

    batch = explore_services.store_upload(
        dataset=customers,
        file=io.BytesIO(
            b"id,email,tier\n1,a@example.com,gold\n2,b@example.com,bronze\n3,c@example.com,wood\n"
        ),
        filename="three.csv",
        actor="tests",
        queue=False,
    )
    explore_services.load_batch(batch_id=batch.pk)
    client.force_login(steward)
    url = dataset_page(customers, "ingest") + f"{batch.pk}/status/"
    status = client.get(url).json()
    assert status["status"] == "loaded"
    assert status["promotion"] == {"state": "waiting", "settled": False, "automatic": True}
    assert status["done"] is False  # the page keeps following it

    run = promote_to_chart(dataset=customers, triggered_by="test")
    status = client.get(url).json()
    promotion = status["promotion"]
    assert (promotion["state"], promotion["promoted"], promotion["quarantined"]) == (
        "promoted",
        1,
        2,
    )
    assert promotion["mostly_quarantined"] is True
    assert promotion["run_url"] == reverse("admin:pipeline_run_change", args=[run.pk])
    assert "status__exact=open" in promotion["quarantine_url"]
    assert status["done"] is True


CONTRACT_FILE = b"""atlas_contract: 1
dataset:
  slug: refunds
  name: Refunds
  business_key: [refund_id]
fields:
  - name: refund_id
    type: integer
    required: true
  - name: amount
    type: decimal
"""


def test_a_contract_file_is_previewed_then_imported(client, steward, viewer):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from governance.compliance.models import AuditLog
    from governance.pipeline.models import Dataset

    url = reverse("admin:pipeline_dataset_import_contract")
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    client.force_login(steward)
    assert (
        "Import a contract"
        in client.get(reverse("admin:pipeline_dataset_changelist")).content.decode()
    )

    # A file with an error: every problem with its place, nothing written.
    broken = CONTRACT_FILE.replace(b"type: decimal", b"type: money")
    page = client.post(url, {"file": SimpleUploadedFile("refunds.yaml", broken)})
    assert "fields[1].type: &#x27;money&#x27; is not one of" in page.content.decode()
    assert not Dataset.objects.filter(slug="refunds").exists()

    # The preview says what would happen and writes nothing, not even to the audit log.
    audits = AuditLog.objects.count()
    page = client.post(url, {"file": SimpleUploadedFile("refunds.yaml", CONTRACT_FILE)})
    html = page.content.decode()
    assert "refunds: created with 2 fields" in html and 'id="contract-import"' in html
    assert not Dataset.objects.filter(slug="refunds").exists()
    assert AuditLog.objects.count() == audits

    # Confirmed: the very text previewed is imported.
    done = client.post(
        url,
        {"text": page.context["text"], "name": "refunds.yaml", "confirm": "import"},
        follow=True,
    )
    assert "refunds: created with 2 fields" in done.content.decode().lower()
    refunds = Dataset.objects.get(slug="refunds")
    assert list(refunds.fields.values_list("name", flat=True)) == ["refund_id", "amount"]
    assert AuditLog.objects.filter(object_type="pipeline.dataset", object_id=str(refunds.pk))
