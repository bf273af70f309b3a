"""In a real browser: a steward changes a weight, sees the latest scores move, then saves."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from chart.services import promote_to_chart
from governance.quality.models import QualityDimension

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def weight_input(page, code: str):
    return page.locator("#result_list tr").filter(has_text=code).locator("input[name$='-weight']")


def test_a_steward_previews_new_weights_then_saves_them(
    live_server, browser_login, screenshot, steward, customers, land
):
    land(customers, [{"id": "1", "tier": "bronze"}, {"id": "2", "tier": "gold"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    page = browser_login(steward)
    page.goto(f"{live_server.url}/admin/quality/qualitydimension/")

    weight_input(page, "validity").fill("0.3000")  # the set now sums to 1.05
    result = page.locator("#weights-preview-result")
    expect(result.locator(".errornote")).to_contain_text("they sum to 1.0500")

    weight_input(page, "validity").fill("0.0500")
    weight_input(page, "completeness").fill("0.4500")
    row = result.locator("tbody tr[data-dataset='orders']")
    expect(row).to_be_visible()
    expect(row.locator(".change")).to_have_class("number change up")
    current = Decimal(row.locator(".current").inner_text())
    proposed = Decimal(row.locator(".proposed").inner_text())
    assert proposed > current
    screenshot("quality-weights-preview")

    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_contain_text("Weights saved (2 changed)")
    weights = dict(QualityDimension.objects.values_list("code", "weight"))
    assert weights["validity"] == Decimal("0.0500")
    assert weights["completeness"] == Decimal("0.4500")
