"""PII findings in the admin (read-only): where a pattern matched, and on a finding's page
the match inside its value, shown only to a reader who may see the field."""

from django.contrib import admin
from django.contrib.admin.utils import unquote

from atlas_site.admin_base import LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_values import ReadableDatasetsMixin
from chart import selectors as chart_selectors
from chart.models import PiiFinding
from governance.compliance.models import PiiType
from governance.pipeline.selectors import dataset_shields


class PiiTypeFilter(admin.SimpleListFilter):
    # Choices from the code: a DISTINCT over every finding would read the whole table.
    title = "PII type"
    parameter_name = "pii_type"

    def lookups(self, request, model_admin):
        return PiiType.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pii_type=self.value())
        return queryset


@admin.register(PiiFinding)
class PiiFindingAdmin(ReadableDatasetsMixin, LargeTableAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "dataset",
        "field_name",
        "pii_type",
        "pattern",
        "confidence",
        "masked_excerpt",
        "created_at",
    )
    list_filter = (PiiTypeFilter, "dataset")
    list_select_related = ("dataset", "pattern")
    raw_id_fields = ("dataset", "raw_record", "chart_record", "pattern", "run")
    ordering = ("-id",)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        finding = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if finding is not None:
            shield = dataset_shields(request.user)(finding.dataset_id)
            context["value_pieces"] = chart_selectors.finding_in_its_value(
                finding=finding, shield=shield
            )
            context["value_context"] = shield.clearance.sees(shield.level_of(finding.field_name))
        return super().change_view(request, object_id, form_url, extra_context=context)
