from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Sum
from django.forms import BaseModelFormSet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.urls import path

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from atlas_site.admin_values import ReadableDatasetsMixin
from atlas_site.forms import BoundedJSONField
from governance.quality.models import CheckResult, QualityDimension, QualityRule, QualityScore
from governance.quality.services import preview_weights, set_weights, validate_weights


class WeightsFormSet(BaseModelFormSet):
    """The six weights, edited together on the changelist; `validate_weights` is the rule."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return  # a row's own error (e.g. a negative weight) is shown on the row
        weights = dict(QualityDimension.objects.values_list("code", "weight"))
        for form in self.forms:
            weights[form.instance.code] = form.cleaned_data.get("weight", form.instance.weight)
        validate_weights(weights)
        self.weights = weights


@admin.register(QualityDimension)
class QualityDimensionAdmin(AuditedModelAdmin):
    """Weights are changed on the list, all six at once, through `set_weights`.

    The change form leaves the weight read-only: changing one weight alone would
    always break the sum. Dimensions are fixed: none is added or deleted.
    """

    list_display = ("code", "weight", "description", "updated_at")
    list_display_links = ("code",)
    list_editable = ("weight",)
    fields = ("code", "weight", "description", "updated_at")
    readonly_fields = ("code", "weight", "updated_at")
    sortable_by = ()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist_formset(self, request, **kwargs):
        return super().get_changelist_formset(request, formset=WeightsFormSet, **kwargs)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_preview"
        view = self.admin_site.admin_view(self.preview_view)
        return [path("preview/", view, name=name), *super().get_urls()]

    def preview_view(self, request):
        """POST the changelist's weights formset -> {"datasets": [...]} or {"error": ...}.

        Nothing is saved: the posted set goes through the same formset and rule as a
        save, then each dataset's latest score is rescored under it.
        """
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        formset = self.get_changelist_formset(request)(
            request.POST, queryset=self.get_queryset(request)
        )
        if not formset.is_valid():
            errors = [
                f"{form.instance.code}: {' '.join(field_errors)}"
                for form in formset.forms
                for field_errors in form.errors.values()
            ]
            errors += list(formset.non_form_errors())
            return JsonResponse({"error": " ".join(errors), "errors": errors}, status=400)
        weights = {code: f"{weight:.4f}" for code, weight in sorted(formset.weights.items())}
        return JsonResponse(
            {"weights": weights, "datasets": preview_weights(weights=formset.weights)}
        )

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and "_save" in request.POST:
            if not self.has_change_permission(request):
                raise PermissionDenied
            formset = self.get_changelist_formset(request)(
                request.POST, request.FILES, queryset=self.get_queryset(request)
            )
            if formset.is_valid():
                changed = set_weights(weights=formset.weights, actor=request.user)
                for dimension in changed:
                    self.log_change(request, dimension, [{"changed": {"fields": ["weight"]}}])
                self.message_user(
                    request,
                    f"Weights saved ({len(changed)} changed); they sum to 1.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(request.get_full_path())
            # Invalid: Django's changelist validates the posted set again and shows why.
        total = QualityDimension.objects.aggregate(total=Sum("weight"))["total"] or Decimal(0)
        context = {"weights_total": f"{total:.4f}", **(extra_context or {})}
        return super().changelist_view(request, context)


@admin.register(QualityRule)
class QualityRuleAdmin(AuditedModelAdmin):
    # Parameters deeper than any rule needs are refused with a form error, not a 500.
    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}
    list_display = ("dataset", "field_name", "kind", "dimension", "origin", "is_active")
    list_filter = ("is_active", "dimension", "kind", "origin", "dataset")
    list_select_related = ("dataset", "dimension")
    search_fields = ("field_name", "dataset__slug", "description")
    readonly_fields = ("updated_at",)


@admin.register(CheckResult)
class CheckResultAdmin(ReadableDatasetsMixin, LargeTableAdmin, ReadOnlyAdmin):
    dataset_lookup = "run__dataset"  # examples are excerpts of the dataset's records
    list_display = ("id", "run", "rule", "passed_count", "failed_count", "created_at")
    list_select_related = ("run", "rule__dataset")
    raw_id_fields = ("run", "rule")
    ordering = ("-id",)


@admin.register(QualityScore)
class QualityScoreAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ("id", "dataset", "run", "overall", "below_threshold", "created_at")
    list_filter = ("below_threshold", "dataset")
    list_select_related = ("dataset", "run")
    raw_id_fields = ("dataset", "run")
    ordering = ("-id",)
