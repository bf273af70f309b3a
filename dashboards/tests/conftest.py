"""Data for the dashboards' tests, made the way Atlas makes it: land, promote, summarise."""

from decimal import Decimal

import pytest

GOOD = {
    "id": "1",
    "email": "ada@example.com",
    "tier": "gold",
    "amount": "10.50",
    "ssn": "123-45-6789",
    "signup": "2026-01-02",
    "notes": "call me",
}


def row(**changes) -> dict:
    return {**GOOD, **changes}


def analyze() -> None:
    """Refresh the planner's row estimates, as autovacuum would after a while."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("explore.raw_record", "chart.chart_record", "chart.quarantined_record"):
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("ANALYZE navigate.fact")


@pytest.fixture
def promoted(customers, land):
    """The customers dataset promoted through chart to navigate, summaries refreshed.

    Six records land: four pass (two with an email address in the unclassified notes),
    one fails two rules and one line does not parse; a metric counts signups by tier.
    """
    from chart.services import promote_to_chart
    from dashboards.services import refresh_run_summaries
    from governance.compliance.models import ClassificationLevel
    from navigate.models import MetricDefinition
    from navigate.services import promote_to_navigate

    # Two of six records fail: the score (about 0.95) ends below this threshold.
    customers.quality_threshold = Decimal("0.99")
    customers.save()
    # A public field keeps its value (and its level) all the way into the facts.
    customers.fields.filter(name="tier").update(
        classification=ClassificationLevel.objects.get(name="public")
    )
    MetricDefinition.objects.create(
        dataset=customers,
        slug="signups",
        name="Signups by tier",
        aggregation="count",
        time_field="signup",
        grain="month",
        dimension_fields=["tier"],
    )
    land(
        customers,
        [
            row(),
            row(id="2", email="bob@example.org", tier="silver", notes="mail carol@example.net"),
            row(id="3", notes="or dave@example.com"),
            row(id="4", signup="2026-02-03"),
            row(id="5", tier="bronze", amount="-1"),
            "{broken json",
        ],
    )
    chart_run = promote_to_chart(dataset=customers, triggered_by="test")
    navigate_run = promote_to_navigate(dataset=customers, triggered_by="test")
    refresh_run_summaries()
    analyze()
    return {"dataset": customers, "chart_run": chart_run, "navigate_run": navigate_run}
