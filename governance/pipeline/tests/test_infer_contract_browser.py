"""Inferring a contract in Chromium: upload a sample, edit one proposed field, save."""

from decimal import Decimal

import pytest

from governance.pipeline.models import Dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = (
    "order_id,email,status,total\n"
    + "".join(
        f"{5000 + n},buyer{n}@example.com,{['open', 'paid'][n % 2]},{10 + n * 2.5:.2f}\n"
        for n in range(10)
    )
).encode()


def test_a_steward_uploads_a_sample_edits_a_field_and_saves(
    live_server, page, browser_login, steward, screenshot
):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    browser_login(steward)
    page.goto(f"{live_server.url}/admin/pipeline/dataset/")
    page.click("text=Infer a contract from a sample")
    page.set_input_files(
        "#id_file", files=[{"name": "orders.csv", "mimeType": "text/csv", "buffer": SAMPLE}]
    )
    page.fill("#id_slug", "web-orders")
    page.fill("#id_name", "Web orders")
    page.click("#infer-propose")
    page.wait_for_load_state("networkidle")

    # The proposal: a row per column, the email masked in its evidence.
    assert page.locator("#infer-fields tbody tr").count() == 4
    assert page.input_value("#id_fields-0-data_type") == "integer"
    assert page.input_value("#id_fields-1-classification") == "confidential"
    assert page.input_value("#id_fields-2-data_type") == "enum"
    assert page.input_value("#id_fields-3-minimum") == "10"
    evidence = page.locator("#infer-row-1 .atlas-infer-evidence").inner_text()
    assert "b***@example.com" in evidence and "buyer1@example.com" not in page.content()
    screenshot("infer-contract-proposal")

    # An edit with a mistake first: the located error on the row, nothing written.
    page.fill("#id_fields-3-minimum", "zero")
    page.click("#infer-save")
    page.wait_for_load_state("networkidle")
    assert "fields[3].minimum: expected a number" in page.locator("#infer-row-3 + tr").inner_text()
    assert not Dataset.objects.exists()

    page.fill("#id_fields-3-minimum", "0")
    page.click("#infer-save")
    page.wait_for_load_state("networkidle")
    assert "web-orders: created with 4 fields, as inferred from orders.csv." in (
        page.locator(".messagelist").inner_text().lower()
    )
    dataset = Dataset.objects.get(slug="web-orders")
    assert page.url.endswith(f"/admin/pipeline/dataset/{dataset.pk}/change/")
    total = dataset.fields.get(name="total")
    assert total.minimum == 0 and total.maximum == Decimal("32.5")
    assert dataset.fields.get(name="email").classification.name == "confidential"
    assert problems == []
