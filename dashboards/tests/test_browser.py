"""A viewer reads every dashboard in Chromium: charts drawn with data, no CSP violation,
a phone-sized layout without sideways scrolling; admin pages it may not use are refused."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    ("home", "/dashboards/"),
    ("quality", "/dashboards/quality/"),
    ("compliance", "/dashboards/compliance/"),
    ("storage", "/dashboards/storage/"),
    ("lineage", "/dashboards/lineage/"),
]

# For each chart: was it drawn, how many non-empty values it holds, and how many of its
# canvas pixels are painted (a chart that failed to draw leaves the canvas transparent).
CHARTS_JS = """
() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
    const chart = window.Chart && window.Chart.getChart(canvas);
    const values = chart
        ? chart.data.datasets.flatMap((d) => d.data).filter((v) => v !== null && v !== 0)
        : [];
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) {
        if (pixels[i] !== 0) painted++;
    }
    return {id: canvas.id, drawn: Boolean(chart), values: values.length, painted};
})
"""

EXPECTED_CHARTS = {
    "home": {"layers", "datasets", "throughput"},
    "quality": {"weights", "worst", "trend-1"},
    "compliance": {"pii-time", "pii-dataset", "levels", "quarantine-time", "reasons"},
    "storage": {"sizes"},
    "lineage": set(),
}


def test_a_viewer_reads_every_dashboard(
    live_server, page, browser_login, viewer, promoted, screenshot
):
    problems = []
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    browser_login(viewer)  # the admin's pages name the icon too: no 404 for /favicon.ico
    page.set_viewport_size({"width": 1366, "height": 900})
    for name, url in PAGES:
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text() == name.title()
        charts = {chart["id"]: chart for chart in page.evaluate(CHARTS_JS)}
        assert set(charts) == EXPECTED_CHARTS[name], name
        for chart in charts.values():
            assert chart["drawn"] and chart["values"] > 0 and chart["painted"] > 0, (name, chart)
        screenshot(f"dashboard-{name}")
    assert page.locator("svg.lineage g.node").count() == 3
    assert page.locator("svg.lineage g.link.carries").count() >= 1

    # The site's root is the home: a card per dataset, and a search over the catalog.
    page.goto(f"{live_server.url}/")
    assert page.url == f"{live_server.url}/dashboards/"
    card = page.locator('article.dataset-card[data-slug="orders"]')
    assert "threshold 0.990" in card.inner_text()
    page.fill("#q", "signup")
    page.press("#q", "Enter")
    page.wait_for_load_state("networkidle")
    results = page.locator("#search-results").inner_text()
    assert "orders.signup" in results and "Signups by tier" in results
    assert problems == []  # no CSP violation, no script error, no missing file


def test_the_dashboards_fit_a_phone(live_server, page, browser_login, viewer, promoted, screenshot):
    browser_login(viewer)
    page.set_viewport_size({"width": 390, "height": 844})
    for name, url in PAGES[:3]:
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("networkidle")
        # The grid collapses to one column: nothing sticks out sideways.
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, name
        card = page.locator(".chart-card").first.bounding_box()
        assert card["width"] <= 390
        screenshot(f"dashboard-{name}-phone")


def test_a_viewer_cannot_reach_admin_pages_it_has_no_permission_for(
    live_server, page, browser_login, viewer, dataset
):
    browser_login(viewer)
    for url in (
        "/admin/compliance/auditlog/",  # the audit log is for audit readers only
        "/admin/compliance/piipattern/add/",  # viewers change nothing
        "/admin/auth/user/",
    ):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403 or "/admin/login/" in page.url, url
    # A dataset it may view opens read-only: no save button.
    response = page.goto(f"{live_server.url}/admin/pipeline/dataset/{dataset.pk}/change/")
    assert response.status == 200
    assert page.locator("input[name=_save]").count() == 0
