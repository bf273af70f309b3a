"""/metrics' alerting figures, and the alert rules and Grafana dashboard that read them."""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dashboards.tests.conftest import row
from dashboards.tests.test_operations import metric_samples

DOCKER = Path(settings.BASE_DIR) / "docker"
RULES = DOCKER / "prometheus" / "atlas-alerts.yml"
DASHBOARD = DOCKER / "grafana" / "atlas-dashboard.json"

# PromQL words that are not metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "abs", "absent", "absent_over_time", "and", "avg", "avg_over_time", "bool", "ceil",
    "changes", "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv",
    "floor", "group_left", "group_right", "histogram_quantile", "humanize", "idelta",
    "increase", "irate", "label_replace", "last_over_time", "max", "max_over_time", "min",
    "min_over_time", "offset", "or", "quantile", "rate", "round", "sort", "sort_desc", "sum",
    "sum_over_time", "time", "topk", "bottomk", "unless", "vector", "scalar",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once label matchers,
    ranges, strings, grouping label lists, durations and numbers are taken out, less the
    language's own words."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?(ms|[smhdwy])?\b", " ", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return words - PROMQL_WORDS


def rule_expressions() -> list[tuple[str, str]]:
    document = yaml.safe_load(RULES.read_text())
    return [
        (rule["alert"], rule["expr"]) for group in document["groups"] for rule in group["rules"]
    ]


def panel_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


@pytest.fixture
def alerting_data(promoted, land):
    """The promoted customers, then: two more records promoted to chart but not taken into
    navigate, three landed but not promoted, a queued run an hour old, a batch stored two
    hours ago, a skipped run, a dead letter, a worker's heartbeat ten minutes old and the
    customers' promotion lock into navigate held by a run started 40 minutes ago."""
    from django.db import connection

    from atlas_site import advisory_locks
    from chart.services import promote_to_chart
    from explore.models import LandingBatch
    from governance.pipeline.models import DeadLetter, Heartbeat, Run, RunKind, RunStatus

    customers = promoted["dataset"]
    land(customers, [row(id="6"), row(id="7")])
    chart_run = promote_to_chart(dataset=customers, triggered_by="test")
    land(customers, [row(id="8"), row(id="9"), row(id="10")])
    now = timezone.now()
    queued = Run.objects.create(dataset=customers, kind=RunKind.PROMOTE_CHART, triggered_by="t")
    Run.objects.filter(pk=queued.pk).update(created_at=now - timedelta(hours=1))
    Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_NAVIGATE,
        status=RunStatus.SKIPPED,
        triggered_by="test",
        finished_at=now,
    )
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(), dataset=customers, sha256="0" * 64, format="jsonl", received_at=now
    )
    LandingBatch.objects.filter(pk=batch.pk).update(created_at=now - timedelta(hours=2))
    DeadLetter.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="chart.tasks.promote_chart",
        deliveries=3,
        first_seen_at=now,
        last_seen_at=now,
    )
    Heartbeat.objects.create(
        component="worker", node="celery@a", seen_at=now - timedelta(minutes=10)
    )
    holding = Run.objects.create(
        dataset=customers,
        kind=RunKind.PROMOTE_NAVIGATE,
        status=RunStatus.RUNNING,
        triggered_by="test",
        started_at=now - timedelta(minutes=40),
    )
    lock = [advisory_locks.PROMOTE_NAVIGATE, customers.pk]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", lock)
    yield {**promoted, "second_chart_run": chart_run, "holding_run": holding}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)


@pytest.mark.django_db
def test_metrics_give_alerting_its_figures(client, alerting_data):
    customers = alerting_data["dataset"]
    chart_run = alerting_data["second_chart_run"]
    assert chart_run.status == "succeeded" and chart_run.rows_in == 2
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = metric_samples(response)
    slug = (("dataset", customers.slug),)

    lag = samples[("atlas_dataset_freshness_lag_seconds", slug)]
    assert 0 <= lag < 120
    assert samples[("atlas_dataset_freshness_target_seconds", slug)] == 86400
    assert samples[("atlas_last_chart_run_quarantine_ratio", slug)] == (
        chart_run.rows_quarantined / chart_run.rows_in
    )
    # Three raw records wait for chart; two chart records (both passed) wait for navigate.
    assert samples[("atlas_backlog_records", (*slug, ("layer", "chart")))] == 3
    assert samples[("atlas_backlog_records", (*slug, ("layer", "navigate")))] == 2
    age = samples[("atlas_last_successful_run_age_seconds", (*slug, ("kind", "promote_navigate")))]
    assert 0 <= age < 120
    assert samples[("atlas_runs_skipped_total", (*slug, ("kind", "promote_navigate")))] == 1
    assert samples[("atlas_dead_letters", ())] == 1
    queued = samples[("atlas_oldest_active_run_age_seconds", (("status", "queued"),))]
    assert 3600 <= queued < 3720
    stored = samples[("atlas_oldest_pending_batch_age_seconds", (("status", "stored"),))]
    assert 7200 <= stored < 7320
    worker = samples[("atlas_component_last_seen_age_seconds", (("component", "worker"),))]
    assert 600 <= worker < 720
    assert ("atlas_component_last_seen_age_seconds", (("component", "beat"),)) not in samples
    holder = (*slug, ("layer", "navigate"), ("run", str(alerting_data["holding_run"].pk)))
    assert 2400 <= samples[("atlas_promotion_lock_held_seconds", holder)] < 2520
    assert [key for key in samples if key[0] == "atlas_promotion_lock_held_seconds"] == [
        ("atlas_promotion_lock_held_seconds", holder)
    ]
    # Only counts, ages, slugs, kinds, layers and statuses: no record's value.
    text = response.content.decode()
    for value in ("ada@example.com", "123-45-6789", "call me", "chart.tasks"):
        assert value not in text


@pytest.mark.django_db
def test_backlog_is_counted_up_to_its_cap(client, dataset, land, monkeypatch):
    from dashboards.selectors import operations

    monkeypatch.setattr(operations, "BACKLOG_CAP", 2)
    land(dataset, [{"order_id": str(n)} for n in range(5)])
    samples = metric_samples(client.get("/metrics"))
    assert samples[("atlas_backlog_records", (("dataset", "orders"), ("layer", "chart")))] == 2
    # Never loaded: no lag (rather than a made-up one), but its target all the same.
    assert ("atlas_dataset_freshness_lag_seconds", (("dataset", "orders"),)) not in samples
    assert ("atlas_dataset_freshness_target_seconds", (("dataset", "orders"),)) in samples


def test_metric_names_are_read_out_of_promql():
    assert metric_names(
        'sum by (kind) (increase(atlas_runs_total{status="failed", kind=~"a.*"}[15m])) > 0'
    ) == {"atlas_runs_total"}
    assert metric_names(
        "atlas_a_seconds > on (dataset) group_left (x) atlas_b_seconds * 1.5e3 or vector(0)"
    ) == {"atlas_a_seconds", "atlas_b_seconds"}
    assert metric_names("up == 0") == {"up"}


@pytest.mark.django_db
def test_rules_and_dashboard_read_only_what_metrics_exports(client, alerting_data):
    response = client.get("/metrics")
    exported = {
        sample.name
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
    rules = rule_expressions()
    panels = panel_expressions()
    assert len(rules) >= 8 and len(panels) >= 8
    for where, expressions in (("rule", rules), ("panel", panels)):
        for name, expr in expressions:
            used = metric_names(expr)
            assert used, f"{where} {name!r} reads no metric: {expr}"
            unknown = used - exported
            assert not unknown, f"{where} {name!r} reads {sorted(unknown)}, not in /metrics"
    # Every figure added for alerting is read by some rule or panel.
    read = set().union(*(metric_names(expr) for _, expr in rules + panels))
    for name in (
        "atlas_dataset_freshness_lag_seconds",
        "atlas_dataset_freshness_target_seconds",
        "atlas_last_chart_run_quarantine_ratio",
        "atlas_backlog_records",
        "atlas_last_successful_run_age_seconds",
        "atlas_runs_skipped_total",
        "atlas_dead_letters",
        "atlas_oldest_active_run_age_seconds",
        "atlas_oldest_pending_batch_age_seconds",
        "atlas_component_last_seen_age_seconds",
        "atlas_promotion_lock_held_seconds",
    ):
        assert name in read, name


def test_rules_file_is_well_formed():
    document = yaml.safe_load(RULES.read_text())
    names = [rule["alert"] for group in document["groups"] for rule in group["rules"]]
    assert len(names) == len(set(names))
    for group in document["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
