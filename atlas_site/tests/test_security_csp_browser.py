"""The admin and the dashboards work under the Content Security Policy, in a real browser.

Chromium reports every blocked inline script, inline style, eval or foreign source both
as a console error and as a `securitypolicyviolation` event; the test collects both while
it opens the pages and clicks through the admin's own scripts.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from governance.compliance.models import PiiPattern
from governance.pipeline.models import Dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Playwright's init scripts run outside the page's CSP: this one records violations.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


def dashboard_urls() -> list[str]:
    """Every dashboard page without parameters, from the URL resolver."""
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLResolver) and pattern.namespace == "dashboards":
            return [
                reverse(f"dashboards:{view.name}")
                for view in pattern.url_patterns
                if isinstance(view, URLPattern) and view.name and not view.pattern.converters
            ]
    return []


@pytest.fixture
def violations(page):
    console: list[str] = []
    page.on(
        "console",
        lambda message: (
            console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.add_init_script(RECORD_VIOLATIONS)

    def collected() -> list[str]:
        return console + page.evaluate("window.__cspViolations || []")

    return collected


def open_page(page, url: str, violations) -> None:
    response = page.goto(url)
    assert response.status == 200, url
    assert "default-src 'self'" in response.headers["content-security-policy"], url
    page.wait_for_load_state("networkidle")
    assert violations() == [], url


def test_admin_pages_run_their_scripts_without_csp_violations(
    live_server, browser_login, superuser, violations, screenshot
):
    dataset = Dataset.objects.create(slug="csp-check", name="CSP check")
    pattern = PiiPattern.objects.order_by("pk").first()
    page = browser_login(superuser)
    assert violations() == []

    open_page(page, f"{live_server.url}{reverse('admin:index')}", violations)
    page.click("button.theme-toggle")  # theme.js

    changelist = reverse("admin:pipeline_dataset_changelist")
    open_page(page, f"{live_server.url}{changelist}", violations)
    page.fill("#nav-filter", "data")  # nav_sidebar.js
    page.check("input.action-select")  # actions.js
    assert page.locator(".action-counter").inner_text().startswith("1 of")

    change = reverse("admin:pipeline_dataset_change", args=[dataset.pk])
    open_page(page, f"{live_server.url}{change}", violations)
    screenshot("csp-dataset-change-form")

    for url in (
        reverse("admin:compliance_piipattern_change", args=[pattern.pk]),
        reverse("admin:compliance_auditlog_changelist"),
        reverse("admin:auth_user_add"),
        reverse("admin:quality_qualitydimension_changelist"),
    ):
        open_page(page, f"{live_server.url}{url}", violations)
    # Issuing an API token: the datasets picker is built by the admin's SelectFilter2.js.
    open_page(page, f"{live_server.url}{reverse('admin:pipeline_apitoken_add')}", violations)
    assert page.locator("#id_datasets_from").count() == 1
    assert violations() == []

    # The control: an inline script is refused and reported, so an empty list means it.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = true'; document.body.appendChild(s); }"
    )
    page.wait_for_function("window.__cspViolations.length > 0")  # dispatched asynchronously
    assert page.evaluate("window.__ran === undefined")
    assert any("script-src" in violation for violation in violations())


def test_dashboards_work_under_the_policy(live_server, browser_login, viewer, violations):
    urls = dashboard_urls()
    assert urls, "no dashboard pages are routed"
    page = browser_login(viewer)
    for url in urls:
        open_page(page, f"{live_server.url}{url}", violations)
    assert violations() == []


def test_the_api_docs_work_under_the_policy(live_server, page, violations):
    # django-ninja's Swagger UI, served from its own static files.
    open_page(page, f"{live_server.url}/api/docs", violations)
    assert page.locator(".info .title").count() == 1  # the UI rendered
