"""The contract's field editor in Chromium: every column within a 1,400 px window."""

import pytest

from governance.pipeline.admin.contract_fields import DatasetFieldInline

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every column the contract's inline shows.
COLUMNS = DatasetFieldInline.fields


def test_the_whole_field_row_fits_a_1400_px_window(
    live_server, page, browser_login, steward, customers
):
    browser_login(steward)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/pipeline/dataset/{customers.pk}/change/")
    page.wait_for_load_state("networkidle")
    # (The dataset's page has no navigation sidebar: the breadcrumbs lead back.)
    assert page.locator("#nav-sidebar").count() == 0
    for column in COLUMNS:
        box = page.locator(f"#id_fields-0-{column}").bounding_box()
        assert box is not None, column
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1400, (column, box)
