"""The facts list: filtered by dataset, metric and a period range that prunes partitions."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from atlas_site.partitions import FACTS, create_partition, existing_partitions
from governance.pipeline.models import Dataset
from navigate.models import Fact, MetricDefinition

FACT_LIST = "admin:navigate_fact_changelist"


@pytest.fixture
def facts(dataset):
    with connection.cursor() as cursor:
        for year in (2024, 2025):
            create_partition(FACTS, cursor, date(year, 1, 1))
    returns = Dataset.objects.create(slug="returns", name="Returns")
    metrics = {
        ds.slug: MetricDefinition.objects.create(
            slug=f"{ds.slug}-count", name="Count", dataset=ds, aggregation="count", time_field="at"
        )
        for ds in (dataset, returns)
    }
    made = {}
    for slug, metric in metrics.items():
        for day in (date(2024, 5, 1), date(2025, 5, 1)):
            made[(slug, day.year)] = Fact.objects.create(
                metric=metric,
                period_start=day,
                grain="day",
                dimension_key="-",
                value=Decimal(1),
                record_count=1,
            )
    return made


@pytest.mark.django_db
def test_a_period_range_lists_and_reads_only_its_years(client, steward, facts):
    client.force_login(steward)
    response = client.get(
        reverse(FACT_LIST), {"period_start__gte": "2025-01-01", "period_start__lt": "2026-01-01"}
    )
    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == {
        facts[("orders", 2025)],
        facts[("returns", 2025)],
    }
    plan = response.context["cl"].queryset.explain()
    assert {name for name in existing_partitions(FACTS) if name in plan} == {"fact_2025"}


@pytest.mark.django_db
def test_facts_filter_by_dataset(client, steward, facts, dataset):
    client.force_login(steward)
    response = client.get(reverse(FACT_LIST), {"metric__dataset__id__exact": str(dataset.pk)})
    assert set(response.context["cl"].result_list) == {
        facts[("orders", 2024)],
        facts[("orders", 2025)],
    }
    titles = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"dataset", "metric", "period start"} <= titles


@pytest.mark.django_db
def test_the_dimension_key_is_on_no_fact_page_or_export(client, superuser, facts):
    # The upsert key is a digest of dimension values, which may be masked on the page.
    fact = facts[("orders", 2025)]
    Fact.objects.filter(pk=fact.pk).update(dimension_key="dimkey0123456789")
    client.force_login(superuser)
    page = client.get(reverse("admin:navigate_fact_change", args=[fact.pk]))
    listing = client.get(reverse(FACT_LIST))
    export = client.post(
        reverse(FACT_LIST),
        {"action": "export_selected_as_csv", "_selected_action": [str(fact.pk)]},
    )
    assert page.status_code == listing.status_code == export.status_code == 200
    exported = b"".join(export.streaming_content).decode()
    assert str(fact.value) in exported or "1.0000000000" in exported
    for text in (page.content.decode(), listing.content.decode(), exported):
        assert "dimkey0123456789" not in text
        assert "dimension key" not in text.lower()
