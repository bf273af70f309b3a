"""In a real browser: a steward fixes a quarantined record, re-processes it, and reads the
run and the dataset's page."""

import pytest

from chart.models import QuarantinedRecord, QuarantineStatus
from chart.services import promote_to_chart

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GOOD = {"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "10.50"}


def test_a_steward_fixes_and_reprocesses_a_quarantined_record(
    live_server, page, browser_login, screenshot, steward, customers, land
):
    land(customers, [GOOD, {**GOOD, "id": "2", "tier": "bronze"}])
    first = promote_to_chart(dataset=customers, triggered_by="test")
    record = QuarantinedRecord.objects.get(dataset=customers)

    browser_login(steward)
    page.goto(f"{live_server.url}/admin/chart/quarantinedrecord/?field=tier")
    page.click(f"#result_list a[href*='/{record.pk}/change/']")
    # The line holds a confidential email the steward is not cleared for: it is shown
    # field by field, the email masked, the tier as received.
    assert "[protected]" in page.locator(".atlas-raw-text").inner_text()
    assert "bronze" in page.locator("#quarantine-correct-form").inner_text()
    assert "ada@example.com" not in page.content()
    assert "allowed_values" in page.locator("#quarantine-reasons").inner_text()
    screenshot("quarantine-record")

    page.locator('input[name="value:tier"]').fill("silver")
    page.click("#quarantine-save-corrections")
    assert "Corrected tier" in page.locator("ul.messagelist").inner_text()
    assert page.locator('input[name="value:tier"]').input_value() == "silver"

    page.click("#quarantine-reprocess")
    assert "1 promoted to chart, 0 still quarantined" in page.locator("ul.messagelist").inner_text()
    assert page.locator("#quarantine-status").inner_text() == "Re-processed"
    assert page.locator("#quarantine-chart-link").is_visible()
    screenshot("quarantine-reprocessed")

    page.click("#quarantine-reprocess-run")
    assert page.locator("#run-rows-in").inner_text() == "1"
    assert page.locator("#run-rows-promoted").inner_text() == "1"
    assert page.locator("#run-rows-quarantined").inner_text().startswith("0")
    screenshot("run-page")

    record.refresh_from_db()
    assert record.status == QuarantineStatus.REPROCESSED

    page.goto(f"{live_server.url}/admin/pipeline/dataset/{customers.pk}/change/")
    runs = page.locator("#dataset-runs").inner_text()
    assert str(first.pk) in runs and str(record.reprocess_run_id) in runs
    assert "explore.tier → chart.tier" in page.locator("#dataset-lineage").inner_text()
    assert page.locator("#dataset-quality svg polyline").count() > 0
    screenshot("dataset-page")
