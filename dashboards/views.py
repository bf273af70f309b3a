"""The dashboards: thin views over `dashboards.selectors` (a module per page), a template each."""

from dataclasses import dataclass

from django.shortcuts import render
from django.utils import timezone

from dashboards.access import admin_links, can_read_audit, dashboard_view
from dashboards.lineage_layout import layout
from dashboards.selectors.charts import COMPLIANCE_DAYS, TREND_DAYS
from dashboards.selectors.compliance import (
    COUNT_CAP,
    classified_fields_by_level,
    open_quarantine,
    open_suggestions,
    pii_by_field,
    pii_by_type_chart,
    pii_over_time,
    quarantine_over_time,
    quarantine_reasons,
    recent_audit,
)
from dashboards.selectors.home import active_dataset_count, dataset_cards, search_catalog
from dashboards.selectors.lineage import lineage_graph
from dashboards.selectors.overview import (
    dataset_totals,
    datasets_below_threshold,
    latest_scores,
    layer_totals,
    recent_failures,
    recent_runs,
    run_counts,
    throughput,
)
from dashboards.selectors.quality import score_trends, weights_in_force, worst_rules
from dashboards.selectors.storage import (
    default_partitions,
    next_to_archive,
    partitions,
    storage_chart,
)


@dataclass(frozen=True)
class Chart:
    """A chart for the page: the canvas with `id` draws `spec` (passed with json_script)."""

    id: str
    spec: dict

    @property
    def data_id(self) -> str:
        return f"{self.id}-data"

    @property
    def has_data(self) -> bool:
        return any(
            value not in (None, 0) for series in self.spec["datasets"] for value in series["data"]
        )


def _bars(chart_id: str, title: str, labels: list, series: dict, **options) -> Chart:
    spec = {
        "type": "bar",
        "title": title,
        "labels": labels,
        "datasets": [{"label": label, "data": data} for label, data in series.items()],
        # One series needs no legend: the title names it.
        "legend": len(series) > 1,
        **options,
    }
    return Chart(chart_id, spec)


def _doughnut(chart_id: str, title: str, labels: list, label: str, data: list) -> Chart:
    spec = {
        "type": "doughnut",
        "title": title,
        "labels": labels,
        "datasets": [{"label": label, "data": data}],
    }
    return Chart(chart_id, spec)


def _page(request, template: str, active: str, context: dict):
    context = {"active": active, "generated_at": timezone.now(), **context}
    return render(request, f"dashboards/{template}", context)


@dashboard_view
def overview(request):
    """The home: a search over the catalog, a card per dataset, then the overview."""
    query = request.GET.get("q", "").strip()[:200]
    search = search_catalog(query) if query else None
    cards = dataset_cards()
    layers = layer_totals()
    totals = dataset_totals()
    charts = [
        _bars(
            "layers",
            "Rows per layer (estimate)",
            [layer.label for layer in layers],
            {"rows": [layer.rows_estimate for layer in layers]},
        ),
        _bars(
            "datasets",
            "Records per dataset (run counters, all time)",
            [t.slug for t in totals],
            {
                "landed in explore": [t.landed for t in totals],
                "promoted to chart": [t.promoted for t in totals],
                "held in quarantine": [t.quarantined for t in totals],
            },
        ),
        Chart(
            "throughput",
            throughput().as_chart(title=f"Rows taken in per day (last {TREND_DAYS} days)"),
        ),
    ]
    return _page(
        request,
        "overview.html",
        "overview",
        {
            "charts": charts,
            "layers": layers,
            "totals": totals,
            "run_counts": run_counts(),
            "recent_runs": recent_runs(),
            "failures": recent_failures(),
            "below_threshold": datasets_below_threshold(),
            "defaults": default_partitions(),
            "query": query,
            "search": search,
            "cards": cards,
            "dataset_count": active_dataset_count(),
            "now": timezone.now(),
            "links": admin_links(request.user),
        },
    )


@dashboard_view
def quality(request):
    weights = weights_in_force()
    trends = score_trends()
    worst = worst_rules()
    charts = [
        _doughnut(
            "weights",
            "Dimension weights in force",
            [w.code for w in weights],
            "weight",
            [float(w.weight) for w in weights],
        ),
        _bars(
            "worst",
            f"Worst rules: share of records failing (last {TREND_DAYS} days)",
            [f"{r.dataset}.{r.field_name or '*'} {r.kind}" for r in worst],
            {"failing share": [round(r.failure_ratio, 4) for r in worst]},
            horizontal=True,
            min=0,
            max=1,
        ),
    ]
    trend_charts = [
        (trend, Chart(f"trend-{n}", trend.as_chart())) for n, trend in enumerate(trends, 1)
    ]
    return _page(
        request,
        "quality.html",
        "quality",
        {
            "charts": charts,
            "trend_charts": trend_charts,
            "weights": weights,
            "worst": worst,
            "latest": latest_scores(),
        },
    )


@dashboard_view
def compliance(request):
    by_field = pii_by_field()
    levels = classified_fields_by_level()
    reasons = quarantine_reasons()
    charts = [
        Chart(
            "pii-time",
            pii_over_time().as_chart(
                title=f"PII findings per day and type (last {COMPLIANCE_DAYS} days)"
            ),
        ),
        Chart("pii-dataset", pii_by_type_chart(by_field)),
        _doughnut(
            "levels",
            "Classified fields by level",
            [level.level for level in levels],
            "fields",
            [len(level.fields) for level in levels],
        ),
        Chart(
            "quarantine-time",
            quarantine_over_time().as_chart(
                kind="bar",
                stacked=True,
                title=f"Records quarantined per day (last {COMPLIANCE_DAYS} days)",
            ),
        ),
        _bars(
            "reasons",
            "Quarantine reasons (records)",
            [f"{r.dataset}.{r.field_name or '*'}: {r.rule}" for r in reasons],
            {"records": [r.records for r in reasons]},
            horizontal=True,
        ),
    ]
    show_audit = can_read_audit(request.user)
    return _page(
        request,
        "compliance.html",
        "compliance",
        {
            "charts": charts,
            "by_field": by_field,
            "levels": levels,
            "suggestions": open_suggestions(),
            "reasons": reasons,
            "open_quarantine": open_quarantine(),
            "count_cap": COUNT_CAP,
            "show_audit": show_audit,
            "audit": recent_audit() if show_audit else [],
        },
    )


@dashboard_view
def storage(request):
    infos = partitions()
    return _page(
        request,
        "storage.html",
        "storage",
        {
            "charts": [Chart("sizes", storage_chart(infos))],
            "partitions": infos,
            "candidates": next_to_archive(),
        },
    )


@dashboard_view
def lineage(request):
    graph = lineage_graph()
    return _page(
        request,
        "lineage.html",
        "lineage",
        {"graph": graph, "drawing": layout(graph)},
    )
