"""The admin login in a real browser: the fixtures every browser test builds on."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_wrong_password_is_refused_and_a_steward_logs_in(
    live_server, page, browser_login, steward
):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "steward")
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")
    assert page.locator(".errornote").is_visible()

    browser_login(steward)
    assert page.url == f"{live_server.url}/admin/"
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")
