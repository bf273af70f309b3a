"""The quarantine list's filters: the run, the field a reason names, the reason's rule.

Filter choices come from small tables (the catalog, contracts, recent runs) or from the
code, never from a DISTINCT over quarantined records, which may be millions.
"""

from django.contrib import admin
from django.db.models import Q

from governance.pipeline.models import DatasetField, Run, RunKind
from governance.quality.models import RuleKind

PARSE_REASON = "parse"
RUN_CHOICES = 15


def chosen_dataset(request) -> str | None:
    """The dataset the list is filtered on (its id), if any."""
    value = request.GET.get("dataset__id__exact", "")
    return value if value.isdigit() else None


class QuarantineRunFilter(admin.SimpleListFilter):
    """The run that quarantined a record, or one that re-processed it."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = Run.objects.filter(kind=RunKind.PROMOTE_CHART, rows_quarantined__gt=0)
        if dataset := chosen_dataset(request):
            runs = runs.filter(dataset_id=dataset)
        return [
            (str(run.pk), f"run {run.pk} · {run.created_at:%Y-%m-%d %H:%M} · {run.triggered_by}")
            for run in runs.order_by("-id")[:RUN_CHOICES]
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(Q(run_id=value) | Q(reprocess_run_id=value))


class ReasonFieldFilter(admin.SimpleListFilter):
    """Records with a reason about this field (with the chosen rule, when one is chosen)."""

    title = "field"
    parameter_name = "field"

    def lookups(self, request, model_admin):
        fields = DatasetField.objects.all()
        if dataset := chosen_dataset(request):
            fields = fields.filter(dataset_id=dataset)
        names = fields.order_by("name").values_list("name", flat=True).distinct()[:200]
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        reason = {"field": self.value()}
        if rule := request.GET.get(ReasonRuleFilter.parameter_name):
            reason["rule"] = rule  # the same reason, not two reasons of one record
        # jsonb containment, answered by the GIN index on reasons.
        return queryset.filter(reasons__contains=[reason])


class ReasonRuleFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        return [(PARSE_REASON, "Line could not be parsed"), *RuleKind.choices]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(reasons__contains=[{"rule": self.value()}])
