import json

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseNotAllowed, JsonResponse
from django.urls import path
from django.utils.html import format_html

from atlas_site.admin_base import (
    AuditedModelAdmin,
    LargeTableAdmin,
    ReadOnlyAdmin,
    RecentPeriodFilter,
)
from governance.compliance.impact import preview_pattern_impact
from governance.compliance.models import (
    AuditLog,
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
    PiiValidator,
)
from governance.compliance.services import PiiValidatorFunction, try_pattern

# The form fields a preview depends on: what the scanner reads, and whether it runs.
IMPACT_FIELDS = (
    "pii_type",
    "regex",
    "validator",
    "context_words",
    "confidence",
    "min_confidence",
    "enabled",
)

# --- Classification levels --------------------------------------------------------------


class ClassificationLevelForm(forms.ModelForm):
    class Meta:
        model = ClassificationLevel
        fields = ("name", "rank", "description", "requires_encryption", "masking")

    def clean_rank(self):
        rank = self.cleaned_data["rank"]
        holder = ClassificationLevel.objects.filter(rank=rank).exclude(pk=self.instance.pk).first()
        if holder is not None:
            raise ValidationError(
                f"Rank {rank} already belongs to the level “{holder.name}”: each rank belongs "
                "to one level. Choose a free rank, or change that level's rank first.",
                code="unique",
            )
        return rank


@admin.register(ClassificationLevel)
class ClassificationLevelAdmin(AuditedModelAdmin):
    """A level used by a contract field or a PII pattern cannot be deleted (PROTECT):
    the admin's delete page lists what still uses it and deletes nothing."""

    form = ClassificationLevelForm
    list_display = ("name", "rank", "masking", "requires_encryption", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("updated_at",)


# --- PII patterns -------------------------------------------------------------------


def pii_validator(name: str) -> PiiValidatorFunction | None:
    """The validator function for a PiiPattern.validator value; None for "none"."""
    if name == PiiValidator.NONE:
        return None
    try:
        from chart.pii.validators import get_validator
    except ImportError:  # validators ship with the PII scanner (chart/pii)
        return None
    try:
        return get_validator(name)
    except ValueError:
        return None


@admin.register(PiiPattern)
class PiiPatternAdmin(AuditedModelAdmin):
    """A regex is checked when saved (PiiPattern.clean: compiles, never matches empty
    text, linear time) and can be tried on sample text from the form before saving."""

    list_display = (
        "name",
        "pii_type",
        "validator",
        "confidence",
        "min_confidence",
        "default_classification",
        "enabled",
    )
    list_editable = ("enabled",)  # switch detectors on and off from the list
    list_filter = ("enabled", "pii_type", "validator", "default_classification")
    list_select_related = ("default_classification",)
    search_fields = ("name", "regex")
    readonly_fields = ("updated_at",)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("try/", view(self.try_pattern_view), name=f"{prefix}_try"),
            path("impact/", view(self.impact_view), name=f"{prefix}_impact"),
            *super().get_urls(),
        ]

    def has_try_permission(self, request) -> bool:
        # Trying is part of writing a pattern: whoever may add or change one may try one.
        return self.has_add_permission(request) or self.has_change_permission(request)

    def try_pattern_view(self, request):
        """POST regex, validator, sample_text -> {"matches": [...]} or {"error": "..."}."""
        if not self.has_try_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        validator_name = request.POST.get("validator", PiiValidator.NONE)
        validator = pii_validator(validator_name)
        try:
            matches = try_pattern(
                regex=request.POST.get("regex", ""),
                sample_text=request.POST.get("sample_text", ""),
                validator=validator,
            )
        except ValidationError as exc:
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        return JsonResponse(
            {
                "matches": matches,
                "validator": validator_name,
                "validator_applied": validator is not None,
            }
        )

    def impact_view(self, request):
        """POST the change form's fields (and `pattern_id` when editing) -> the impact preview.

        The posted values go through the pattern's own admin form, so a preview is
        refused for exactly the reasons a save would be (only the fields the scanner
        reads count here: a duplicate name does not stop a preview).
        """
        if not self.has_try_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        pattern_id = request.POST.get("pattern_id") or None
        saved = self.get_object(request, pattern_id) if pattern_id else None
        if pattern_id and saved is None:
            return JsonResponse({"error": f"There is no PII pattern {pattern_id}."}, status=404)
        candidate = self.get_object(request, pattern_id) if saved else PiiPattern()
        form = self.get_form(request, saved)(request.POST, instance=candidate)
        form.is_valid()
        errors = {name: messages for name, messages in form.errors.items() if name in IMPACT_FIELDS}
        if errors:
            labels = {name: form.fields[name].label for name in errors}
            text = " ".join(f"{labels[name]}: {' '.join(errors[name])}" for name in errors)
            return JsonResponse({"error": text, "errors": errors}, status=400)
        return JsonResponse(preview_pattern_impact(candidate=form.instance, saved=saved))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        context = {"can_try_pattern": self.has_try_permission(request), **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)


@admin.register(ClassificationSuggestion)
class ClassificationSuggestionAdmin(ReadOnlyAdmin):
    # Accepting or rejecting a suggestion is a decision with effects (it classifies
    # the field); it belongs to a service, not to editing this row by hand.
    list_display = (
        "dataset_field",
        "suggested_level",
        "status",
        "values_scanned",
        "values_with_pii",
        "updated_at",
    )
    list_filter = ("status", "suggested_level")
    list_select_related = ("dataset_field__dataset", "suggested_level")


# --- Audit log ----------------------------------------------------------------------


class ObjectTypeFilter(admin.SimpleListFilter):
    # Choices from the installed models: a DISTINCT over the log would read all of it.
    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        return sorted(
            (model._meta.label_lower, f"{model._meta.app_label}: {model._meta.verbose_name}")
            for model in apps.get_models()
        )

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(object_type=self.value())
        return queryset


def _pretty_json(value) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(AuditLog)
class AuditLogAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """Append-only: viewed here, never added, changed or deleted (the database refuses too)."""

    list_display = ("at", "actor", "action", "object_type", "object_id", "object_repr")
    # The `at` ranges are constant bounds on the partition key: only the quarters in
    # range are read. No date_hierarchy: it runs a DISTINCT over every row's date.
    list_filter = (("at", RecentPeriodFilter), "action", ObjectTypeFilter)
    # Ids grow with time, and (id, at) is indexed: "newest first" without a sort.
    ordering = ("-id",)
    search_fields = ("actor", "object_id")
    search_help_text = "An exact user name or object id."
    fields = (
        "at",
        "actor",
        "actor_id",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before_values",
        "after_values",
        "detail",
        "remote_addr",
        "user_agent",
    )
    readonly_fields = ("before_values", "after_values")

    @admin.display(description="before")
    def before_values(self, entry: AuditLog) -> str:
        return _pretty_json(entry.before)

    @admin.display(description="after")
    def after_values(self, entry: AuditLog) -> str:
        return _pretty_json(entry.after)

    def get_search_results(self, request, queryset, search_term):
        # Exact matches only: a substring search (ILIKE) would read every partition.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(actor=term) | Q(object_id=term)), False


# --- Users and groups: who may do what is audited like everything else ----------------

User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedModelAdmin, UserAdmin):
    audit_hidden_fields = ("password",)

    def user_change_password(self, request, id, form_url=""):
        # Django's password page saves the form itself, not through save_model.
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            audited = request.method == "POST" and user is not None
            before = self.stored_snapshot(user) if audited else None
            response = super().user_change_password(request, id, form_url)
            if audited and response.status_code == 302:
                user.refresh_from_db()
                self._audit_save(request, user, before)
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    pass
