"""The upload page in Chromium follows a batch past its load, through its promotion."""

import io

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_upload_page_shows_where_the_batch_went(
    live_server, page, browser_login, steward, customers
):
    from chart.services import promote_to_chart
    from explore import services

    batch = services.store_upload(
        dataset=customers,
        file=io.BytesIO(
            b"id,email,tier\n1,a@example.com,gold\n2,b@example.com,bronze\n3,c@example.com,wood\n"
        ),
        filename="three.csv",
        actor="tests",
        queue=False,
    )
    services.load_batch(batch_id=batch.pk)
    promote_to_chart(dataset=customers, triggered_by="test")

    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    browser_login(steward)
    page.goto(f"{live_server.url}/admin/pipeline/dataset/{customers.pk}/ingest/?batch={batch.pk}")
    line = page.locator(".atlas-batch-promotion")
    line.wait_for(state="visible")
    from chart.models import ChartRecord, QuarantinedRecord

    text = line.inner_text()
    promoted, held = ChartRecord.objects.count(), QuarantinedRecord.objects.count()
    assert promoted + held == 3
    assert f"{promoted} records in chart, {held} in quarantine" in text
    assert text.startswith("Promoted, but most records were held back" if held > 1 else "Promoted:")
    assert line.locator("a", has_text="run ").count() == 1
    assert problems == []


def test_the_recent_batches_row_moves_with_the_batch(
    live_server, page, browser_login, steward, customers
):
    from explore import services

    batch = services.store_upload(
        dataset=customers,
        file=io.BytesIO(b"id,email\n1,a@example.com\n2,b@example.com\n"),
        filename="two.csv",
        actor="tests",
        queue=False,
    )
    browser_login(steward)
    page.goto(f"{live_server.url}/admin/pipeline/dataset/{customers.pk}/ingest/?batch={batch.pk}")
    status = page.locator(f'tr[data-batch="{batch.pk}"] [data-column="status"]')
    assert status.inner_text().startswith("Stored")
    services.load_batch(batch_id=batch.pk)  # as a worker would, while the page watches
    page.wait_for_function(
        f"""() => document.querySelector('tr[data-batch="{batch.pk}"] [data-column="status"]')
                   .textContent.startsWith("Loaded")""",
        timeout=15000,
    )
    row = page.locator(f'tr[data-batch="{batch.pk}"]')
    assert row.locator('[data-column="rows_parsed"]').inner_text() == "2"
