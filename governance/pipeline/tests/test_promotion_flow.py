"""explore → chart → navigate through the services, the command and the tick."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from chart.services import promote_to_chart
from governance.pipeline.models import Layer, Run, RunKind, RunStatus, Watermark
from governance.pipeline.selectors import due_datasets
from navigate.models import Fact, MetricDefinition
from navigate.services import promote_to_navigate


def order(id_, tier="gold", amount="10", signup="2026-01-05"):
    return {"id": str(id_), "tier": tier, "amount": amount, "signup": signup}


@pytest.fixture
def revenue(customers):
    return MetricDefinition.objects.create(
        slug="amount-by-tier",
        name="Amount by tier",
        dataset=customers,
        aggregation="sum",
        value_field="amount",
        time_field="signup",
        grain="month",
        dimension_fields=["tier"],
    )


def facts(metric):
    return {
        (f.period_start.isoformat(), f.dimensions["tier"]): (f.value, f.record_count)
        for f in Fact.objects.filter(metric=metric)
    }


def test_facts_follow_chart_and_rerunning_changes_nothing(customers, land, revenue):
    land(customers, [order(1), order(2, amount="5"), order(3, tier="silver", signup="2026-02-01")])
    promote_to_chart(dataset=customers, triggered_by="test")
    run = promote_to_navigate(dataset=customers, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == run.rows_promoted == 3
    expected = {
        ("2026-01-01", "gold"): (Decimal("15"), 2),
        ("2026-02-01", "silver"): (Decimal("10"), 1),
    }
    assert facts(revenue) == expected
    again = promote_to_navigate(dataset=customers, triggered_by="test")
    assert again.rows_in == 0
    assert facts(revenue) == expected
    assert Watermark.objects.get(dataset=customers, layer=Layer.NAVIGATE).position > 0


def test_a_superseding_record_moves_its_contribution(customers, land, revenue):
    land(customers, [order(1), order(2, amount="5")])
    promote_to_chart(dataset=customers, triggered_by="test")
    promote_to_navigate(dataset=customers, triggered_by="test")
    land(customers, [order(2, tier="silver", amount="7")])
    promote_to_chart(dataset=customers, triggered_by="test")
    promote_to_navigate(dataset=customers, triggered_by="test")
    assert facts(revenue) == {
        ("2026-01-01", "gold"): (Decimal("10"), 1),
        ("2026-01-01", "silver"): (Decimal("7"), 1),
    }


def test_promote_command_runs_both_layers(customers, land, revenue):
    land(customers, [order(1), order(2, tier="bronze")])
    out = StringIO()
    call_command("promote", customers.slug, stdout=out)
    text = out.getvalue()
    assert "promoted 1, quarantined 1" in text
    assert "Promote chart → navigate" in text
    assert Fact.objects.filter(metric=revenue).count() == 1


def test_promote_command_to_chart_only_and_unknown_dataset(customers, land):
    land(customers, [order(1)])
    call_command("promote", customers.slug, "--to", "chart", stdout=StringIO())
    assert not Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE).exists()
    with pytest.raises(CommandError, match=r"No dataset 'nope'\. Known datasets: orders"):
        call_command("promote", "nope")


def test_schedule_decides_which_datasets_are_due(customers):
    customers.schedule = "*/15 * * * *"
    customers.save()
    customers.refresh_from_db()
    created = customers.created_at
    assert customers not in due_datasets(now=created + timedelta(seconds=1))
    assert customers in due_datasets(now=created + timedelta(minutes=16))
    customers.schedule = ""
    customers.save()
    assert customers not in due_datasets(now=timezone.now() + timedelta(days=1))


def test_classification_propagates_until_a_transform_removes_the_value(customers, land):
    from governance.compliance.models import ClassificationLevel
    from governance.pipeline.selectors import field_classifications

    # Masked levels reach chart typed (masking is applied where values are shown), so
    # their classification goes on; encryption stops it.
    internal = ClassificationLevel.objects.get(name="internal")
    customers.fields.filter(name="tier").update(classification=internal)
    MetricDefinition.objects.create(
        slug="count-by-tier",
        name="Count by tier",
        dataset=customers,
        aggregation="count",
        time_field="signup",
        grain="month",
        dimension_fields=["tier"],
    )
    land(customers, [order(1)])
    promote_to_chart(dataset=customers, triggered_by="test")
    promote_to_navigate(dataset=customers, triggered_by="test")
    found = {
        (c.layer, c.name): (c.level, c.source) for c in field_classifications(dataset=customers)
    }
    assert found[("explore", "ssn")] == ("restricted", "contract")
    assert found[("chart", "ssn")] == (None, "explore.ssn via encrypted")
    assert found[("chart", "email")] == ("confidential", "explore.email via typed")
    assert found[("chart", "tier")] == ("internal", "explore.tier via typed")
    assert found[("navigate", "count-by-tier.tier")] == ("internal", "chart.tier via grouped")
    assert ("navigate", "count-by-tier.signup") not in found


def test_a_change_of_level_shows_in_the_lineage_at_once(customers, land):
    """Not after the next run: the level a field has now decides how chart holds it."""
    from governance.compliance.models import ClassificationLevel
    from governance.pipeline.selectors import field_classifications

    land(customers, [order(1)])
    promote_to_chart(dataset=customers, triggered_by="test")

    def chart_level(name: str):
        return next(
            c.level
            for c in field_classifications(dataset=customers)
            if (c.layer, c.name) == ("chart", name)
        )

    assert (chart_level("email"), chart_level("ssn")) == ("confidential", None)
    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    customers.fields.filter(name="email").update(classification=levels["restricted"])
    customers.fields.filter(name="ssn").update(classification=levels["internal"])
    assert (chart_level("email"), chart_level("ssn")) == (None, "internal")
