"""The home (/ and /dashboards/): dataset cards that tell the state, a catalog search, and
the admin's way there."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboards.selectors.home import dataset_cards, search_catalog
from governance.pipeline.models import Dataset, DatasetField, Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db


def card_of(html: str, slug: str) -> str:
    match = re.search(rf'<article [^>]*data-slug="{slug}".*?</article>', html, re.S)
    assert match, f"no card for {slug}"
    return match.group(0)


def test_the_root_is_the_home_and_the_favicon_is_served(client, viewer):
    assert client.get("/")["Location"] == "/dashboards/"
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301
    assert favicon["Location"].endswith("dashboards/favicon.svg")
    client.force_login(viewer)
    assert client.get("/", follow=True).redirect_chain[-1][0] == "/dashboards/"


def test_a_card_tells_the_datasets_state(client, steward, promoted):
    customers = promoted["dataset"]
    # The last run failed; the load before it is older than the freshness target.
    Run.objects.filter(dataset=customers).update(created_at=timezone.now() - timedelta(days=3))
    failed = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        status=RunStatus.FAILED,
        triggered_by="test",
    )
    client.force_login(steward)
    card = card_of(client.get("/dashboards/").content.decode(), customers.slug)
    assert f'href="/admin/pipeline/run/{failed.pk}/change/"' in card
    assert "Promote explore → chart: Failed" in card
    assert "threshold 0.990" in card  # the score (about 0.95) is below it
    assert 'class="bad"' in card
    assert (
        f"/admin/chart/quarantinedrecord/?dataset__id__exact={customers.pk}"
        "&amp;status__exact=open" in card
    )
    assert "2 records" in card
    assert "restricted" in card  # the ssn field's level, the most sensitive
    assert "(target P1D: stale)" in card
    assert "dataset-card attention" in card


def test_a_fresh_dataset_is_not_stale_and_a_new_one_has_no_runs(client, viewer, customers):
    Run.objects.create(
        dataset=customers, kind=RunKind.INGEST, status=RunStatus.SUCCEEDED, triggered_by="test"
    )
    empty = Dataset.objects.create(slug="empty", name="Empty")
    client.force_login(viewer)
    html = client.get("/dashboards/").content.decode()
    assert "stale" not in card_of(html, customers.slug)
    assert "last loaded or promoted" in card_of(html, customers.slug)
    empty_card = card_of(html, empty.slug)
    assert "none yet" in empty_card and "never loaded" in empty_card
    assert "not scored yet" in empty_card


def test_cards_cost_the_same_few_queries_for_many_datasets(django_assert_max_num_queries):
    for number in range(60):
        dataset = Dataset.objects.create(slug=f"d{number:02d}", name=f"Dataset {number}")
        DatasetField.objects.create(dataset=dataset, name="id")
    with django_assert_max_num_queries(1):
        cards = dataset_cards()
    assert len(cards) == 48  # CARDS: search finds the others
    assert [card.slug for card in cards] == sorted(card.slug for card in cards)


def test_search_finds_datasets_fields_and_metrics(client, viewer, promoted):
    results = search_catalog("SIGNUP")
    assert [f.name for f in results.fields] == ["signup"]
    assert [m.slug for m in results.metrics] == ["signups"]
    assert search_catalog("ORDERS").datasets == [promoted["dataset"]]
    assert search_catalog("nothing like this").empty

    client.force_login(viewer)
    html = client.get("/dashboards/", {"q": "signup"}).content.decode()
    assert "Results for “signup”" in html
    assert "orders.signup" in html
    assert "Signups by tier" in html
    assert (
        "No dataset, field or metric matches."
        in client.get("/dashboards/", {"q": "<script>"}).content.decode()
    )


def test_links_a_reader_may_not_follow_are_not_shown(client, viewer, promoted):
    from django.contrib.auth.models import Group, Permission

    # Viewers without the admin's view permissions on runs and quarantine.
    Group.objects.get(name="Viewer").permissions.remove(
        *Permission.objects.filter(codename__in=["view_run", "view_quarantinedrecord"])
    )
    client.force_login(viewer)
    card = card_of(client.get("/dashboards/").content.decode(), promoted["dataset"].slug)
    assert "/admin/pipeline/run/" not in card
    assert "/admin/chart/quarantinedrecord/" not in card
    assert "2 records" in card


def test_the_admin_index_starts_with_a_way_in(client, viewer, steward):
    client.force_login(steward)
    html = client.get("/admin/").content.decode()
    start = html[html.index('id="start-here"') :]
    assert 'href="/dashboards/"' in start
    assert 'href="/admin/pipeline/dataset/add/"' in start
    assert 'rel="icon"' in html
    client.force_login(viewer)
    start = client.get("/admin/").content.decode()
    start = start[start.index('id="start-here"') :]
    assert 'href="/dashboards/"' in start
    assert "/admin/pipeline/dataset/add/" not in start


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=7), "P7D"),
        (timedelta(hours=6), "PT6H"),
        (timedelta(days=1, hours=12, minutes=30), "P1DT12H30M"),
        (timedelta(seconds=90), "PT1M30S"),
        (timedelta(0), "PT0S"),
        (timedelta(seconds=1, microseconds=500000), "PT1.5S"),
    ],
)
def test_durations_are_shown_as_short_iso_8601(delta, text):
    from dashboards.templatetags.humanize_atlas import iso_duration

    assert iso_duration(delta) == text
