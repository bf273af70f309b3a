"""The dashboard pages: who may read them, what they show, and that they stay CSP-clean."""

import json
import re

import pytest
from django.contrib.auth.models import Group

from conftest import make_user

PAGES = ["/dashboards/"] + [
    f"/dashboards/{page}/" for page in ("quality", "compliance", "storage", "lineage")
]
HEADINGS = ["Home", "Quality", "Compliance", "Storage", "Lineage"]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_are_sent_to_the_admin_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", PAGES)
def test_users_without_an_atlas_role_are_refused(client, django_user_model, url):
    no_role = make_user(django_user_model, "staff-no-role")
    client.force_login(no_role)
    assert client.get(url).status_code == 403
    # A role without staff status is not enough either (they cannot log in to Atlas).
    outsider = django_user_model.objects.create_user("outsider", password="x" * 20)
    outsider.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(outsider)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("role", ["viewer", "steward", "officer", "superuser"])
def test_every_role_reads_every_page(client, request, promoted, role):
    client.force_login(request.getfixturevalue(role))
    for url, heading in zip(PAGES, HEADINGS, strict=True):
        response = client.get(url)
        assert response.status_code == 200, url
        assert f"<h1>{heading}</h1>" in response.content.decode(), url


def test_no_page_is_kept_by_a_browser_or_proxy_cache(client, viewer):
    # Pages drawn for one user's permissions: the next person at that browser (or behind
    # that proxy) must not be served them from a cache.
    for url in PAGES:
        assert "no-store" in client.get(url)["Cache-Control"], url  # the login redirect
    client.force_login(viewer)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        directives = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives, url


def charts_of(response) -> dict[str, dict]:
    html = response.content.decode()
    return {
        match[1]: json.loads(match[2])
        for match in re.finditer(
            r'<script id="([^"]+)" type="application/json">(.*?)</script>', html, re.S
        )
    }


def test_pages_have_no_inline_code_and_charts_have_data(client, viewer, promoted):
    client.force_login(viewer)
    charts = {}
    for url in PAGES:
        html = client.get(url).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
        assert "javascript:" not in html
        assert 'style="' not in html
        assert '<meta name="viewport"' in html
        charts.update(charts_of(client.get(url)))
    for chart_id in (
        "layers-data",
        "datasets-data",
        "pii-dataset-data",
        "levels-data",
        "sizes-data",
    ):
        spec = charts[chart_id]
        assert any(value for series in spec["datasets"] for value in series["data"]), chart_id
    layers = charts["layers-data"]
    assert layers["labels"][0] == "explore: raw records"


def test_overview_shows_runs_failures_and_thresholds(client, viewer, promoted):
    from governance.pipeline.models import Run, RunKind, RunStatus

    Run.objects.create(
        dataset=promoted["dataset"],
        kind=RunKind.PROMOTE_CHART,
        status=RunStatus.FAILED,
        triggered_by="test",
        error="Boom: the contract broke",
    )
    client.force_login(viewer)
    html = client.get("/dashboards/").content.decode()
    assert "Boom: the contract broke" in html
    # The customers run scored below the default 0.95 threshold (2 of 6 failed).
    below = re.search(r'id="below-threshold">(.*?)</section>', html, re.S)[1]
    assert promoted["dataset"].slug in below
    assert "DEFAULT" in html or "_default" in html


def test_audit_activity_is_shown_only_to_audit_readers(client, viewer, officer, promoted):
    client.force_login(viewer)
    assert 'id="audit"' not in client.get("/dashboards/compliance/").content.decode()
    client.force_login(officer)
    html = client.get("/dashboards/compliance/").content.decode()
    assert 'id="audit"' in html
    assert "Ran a pipeline step" in html


def test_compliance_shows_pii_suggestions_and_quarantine(client, viewer, promoted):
    client.force_login(viewer)
    html = client.get("/dashboards/compliance/").content.decode()
    by_field = re.search(r'id="pii-by-field">(.*?)</section>', html, re.S)[1]
    assert "notes" in by_field and "email" in by_field
    suggestions = re.search(r'id="suggestions">(.*?)</section>', html, re.S)[1]
    assert f"{promoted['dataset'].slug}.notes" in suggestions
    quarantine = re.search(r'id="quarantine">(.*?)</section>', html, re.S)[1]
    assert "allowed_values" in quarantine and "parse" in quarantine


def test_lineage_draws_each_layer_with_classifications(client, viewer, promoted):
    client.force_login(viewer)
    html = client.get("/dashboards/lineage/").content.decode()
    slug = promoted["dataset"].slug
    for key in (f"explore:{slug}", f"chart:{slug}", "navigate:signups"):
        assert f'data-key="{key}"' in html
    assert "ssn: restricted" in html  # the contract's level in explore
    assert "ssn: protected" in html  # encrypted on the way to chart: the level stops
    # tier (public) is typed into chart and grouped into the facts: its level carries on.
    signups = re.search(r'data-key="navigate:signups">(.*?)</g>', html, re.S)[1]
    assert "tier: public" in signups
    table = re.search(r'id="lineage-table">(.*?)</section>', html, re.S)[1]
    assert re.search(
        rf"chart:{slug}</td><td>navigate:signups</td><td>\w+</td><td>[^<]*tier \(public\)", table
    )


def test_a_page_needs_few_queries(client, viewer, promoted, django_assert_max_num_queries):
    client.force_login(viewer)
    for url in PAGES:
        with django_assert_max_num_queries(40):
            client.get(url)


def test_storage_shows_what_retention_archives_next(client, viewer):
    from datetime import date

    from dashboards.tests.test_selectors import make_partition
    from governance.archive.models import RetentionPolicy

    old = make_partition(date(2020, 1, 1), date(2020, 2, 1))
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    client.force_login(viewer)
    html = client.get("/dashboards/storage/").content.decode()
    section = re.search(r'id="next-to-archive">(.*?)</section>', html, re.S)[1]
    assert f"explore.raw_record.{old}" in section
    assert 'class="retention-due"' in section
    partitions = re.search(r'id="partitions">(.*?)</section>', html, re.S)[1]
    assert old in partitions and "DEFAULT" in partitions


def test_the_pages_counts_agree_with_the_tables(client, officer, steward, promoted):
    """Landed, promoted, in quarantine, open and facts: each figure computed from the
    tables, and every page that shows it shows the same, after a re-processing too (a
    record re-processed out of quarantine is counted once, as promoted)."""
    import re

    from chart.models import ChartRecord, QuarantinedRecord, QuarantineStatus
    from chart.reprocess import correct_quarantined_values, reprocess_quarantined
    from dashboards.services import refresh_run_summaries
    from navigate.models import Fact

    dataset = promoted["dataset"]
    # The record that failed on its tier and amount, corrected and re-processed.
    fixable = next(
        record
        for record in QuarantinedRecord.objects.filter(dataset=dataset)
        if any(reason.get("field") == "tier" for reason in record.reasons)
    )
    correct_quarantined_values(
        record=fixable, values={"tier": "gold", "amount": "1"}, actor=steward
    )
    reprocess_quarantined(records=[fixable], actor=steward)
    refresh_run_summaries()

    promoted_count = ChartRecord.objects.filter(dataset=dataset).count()
    held = (
        QuarantinedRecord.objects.filter(dataset=dataset)
        .exclude(status=QuarantineStatus.REPROCESSED)
        .count()
    )
    open_count = QuarantinedRecord.objects.filter(
        dataset=dataset, status=QuarantineStatus.OPEN
    ).count()
    assert (promoted_count, held, open_count) == (5, 1, 1)

    client.force_login(officer)
    overview_html = client.get("/dashboards/").content.decode()
    row = re.search(rf'<tr data-slug="{dataset.slug}">.*?</tr>', overview_html, re.S).group(0)
    assert f'class="num promoted">{promoted_count}<' in row
    assert f'class="num quarantined">{held}<' in row
    assert f'class="num facts">{Fact.objects.count()}<' in row
    card = re.search(rf'<article [^>]*data-slug="{dataset.slug}".*?</article>', overview_html, re.S)
    assert f"{open_count} records" in card.group(0)
    compliance_html = client.get("/dashboards/compliance/").content.decode()
    assert re.search(
        rf"<td>{dataset.slug}</td>\s*<td class=\"num\">{open_count}</td>", compliance_html
    )
