import json
from datetime import timedelta

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from atlas_site.admin_base import (
    AuditedModelAdmin,
    LargeTableAdmin,
    ReadOnlyAdmin,
)
from atlas_site.admin_filters import DateRangeFilter
from atlas_site.admin_values import ReadableDatasetsMixin
from chart import selectors as chart_selectors
from governance.compliance.clearance import cleared_groups, set_cleared_groups
from governance.compliance.impact import preview_pattern_impact
from governance.compliance.models import (
    AuditAction,
    AuditLog,
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
    PiiValidator,
    SuggestionStatus,
)
from governance.compliance.pii.scanner import InvalidPatternError
from governance.compliance.pii.validators import get_validator
from governance.compliance.selectors import decision_note, readable_changes
from governance.compliance.services import PiiValidatorFunction, record_audit, try_pattern
from governance.pipeline.classification import accept_suggestion, level_changed, reject_suggestion

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

# An impact preview's audit entry keeps these counts per source, dataset and field (never
# the excerpts), for at most this many fields.
IMPACT_COUNTS = ("before", "after", "gained", "lost")
IMPACT_AUDIT_ROWS = 100

# --- Classification levels --------------------------------------------------------------


class ClassificationLevelForm(forms.ModelForm):
    cleared_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Members of these groups see this level's values in clear (values of a "
        "level that requires encryption they may reveal one at a time, with a reason). "
        "Everyone else sees them masked by the rule above. Each grant and withdrawal is "
        "audited.",
    )

    class Meta:
        model = ClassificationLevel
        fields = ("name", "rank", "description", "requires_encryption", "masking")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["cleared_groups"].initial = cleared_groups(self.instance)

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
    list_display = ("name", "rank", "masking", "requires_encryption", "cleared", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("updated_at",)

    @admin.display(description="cleared groups")
    def cleared(self, level: ClassificationLevel) -> str:
        return ", ".join(group.name for group in cleared_groups(level)) or "-"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        granted, withdrawn = set_cleared_groups(
            level=form.instance, groups=form.cleaned_data["cleared_groups"], actor=request.user
        )
        for verb, groups in (("granted to", granted), ("withdrawn from", withdrawn)):
            if groups:
                self.message_user(
                    request,
                    f"Clearance for {form.instance.name} {verb} "
                    + ", ".join(group.name for group in groups)
                    + ".",
                    messages.INFO,
                )

    def save_model(self, request, obj, form, change):
        stored = (
            ClassificationLevel.objects.filter(pk=obj.pk)
            .values("rank", "requires_encryption")
            .first()
            if change
            else None
        )
        super().save_model(request, obj, form, change)
        if stored is not None:
            # Fields at this level may now be stored otherwise in chart: re-protect them.
            runs = level_changed(
                level=obj,
                rank_before=stored["rank"],
                encryption_before=stored["requires_encryption"],
                actor=request.user,
            )
            if runs:
                self.message_user(
                    request,
                    "Queued re-protection of chart values: "
                    + ", ".join(f"run {run.pk} ({run.dataset.slug})" for run in runs)
                    + ".",
                    messages.INFO,
                )


# --- PII patterns -------------------------------------------------------------------


def pii_validator(name: str) -> PiiValidatorFunction | None:
    """The validator function for a PiiPattern.validator value; None for "none"."""
    if name == PiiValidator.NONE:
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
        errors = {name: found for name, found in form.errors.items() if name in IMPACT_FIELDS}
        if errors:
            labels = {name: form.fields[name].label for name in errors}
            text = " ".join(f"{labels[name]}: {' '.join(errors[name])}" for name in errors)
            return JsonResponse({"error": text, "errors": errors}, status=400)
        try:
            preview = preview_pattern_impact(
                candidate=form.instance, saved=saved, sample=chart_selectors.impact_sample()
            )
        except InvalidPatternError as exc:  # another stored pattern that cannot run
            return JsonResponse({"error": str(exc)}, status=400)
        self._audit_impact_preview(request, form.instance, saved, preview)
        return JsonResponse(preview)

    def _audit_impact_preview(self, request, candidate: PiiPattern, saved, preview: dict):
        """Who previewed which pattern (as typed) over how many records, and the counts.

        A preview reads recent records a compliance officer may not otherwise look at, and
        a pattern typed to match one value would show whether it is there: the entry lets
        an auditor see that. It holds counts only, never the preview's excerpts.
        """
        previewed = {name: getattr(candidate, name) for name in IMPACT_FIELDS}
        for name in ("confidence", "min_confidence"):
            previewed[name] = str(previewed[name])
        fields = [
            {key: row[key] for key in ("source", "dataset", "field", *IMPACT_COUNTS)}
            for row in preview["rows"][:IMPACT_AUDIT_ROWS]
        ]
        what = f"PII pattern {saved.name!r}" if saved else "a new PII pattern"
        totals = preview["totals"]
        record_audit(
            actor=request.user,
            action=AuditAction.ACTION,
            object_type=self.opts.label_lower,
            object_id=str(saved.pk) if saved else "",
            object_repr=(saved.name if saved else candidate.name or "new pattern"),
            after={
                "preview": "impact",
                "pattern": previewed,
                "sample": preview["sample"],
                "totals": totals,
                "fields": fields,
                "fields_not_listed": max(0, len(preview["rows"]) - IMPACT_AUDIT_ROWS),
            },
            detail=(
                f"previewed the impact of {what} on {preview['sample']['chart_records']} chart "
                f"and {preview['sample']['quarantined_records']} quarantined records: "
                f"{totals['after']} values matched ({totals['gained']} gained, "
                f"{totals['lost']} lost)"
            ),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        context = {"can_try_pattern": self.has_try_permission(request), **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)


class DecisionForm(forms.Form):
    """Accept (at the suggested level, or another) or reject (with a reason) one suggestion."""

    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])
    level = forms.ModelChoiceField(
        queryset=ClassificationLevel.objects.all(),
        required=False,
        help_text="The level the field is classified at; the suggested one when empty.",
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the suggestion is rejected, or why the field is classified below its "
        "current level (a compliance officer's decision); kept with the decision.",
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept with each rejection; a field is not suggested again until its "
        "evidence changes.",
    )


@admin.register(ClassificationSuggestion)
class ClassificationSuggestionAdmin(ReadableDatasetsMixin, ReadOnlyAdmin):
    """PII found in unclassified fields, with its evidence, for a steward or officer to decide.

    Accepting or rejecting is a decision with effects (accepting classifies the field);
    it goes through `accept_suggestion` / `reject_suggestion`, which audit it, from the
    list's actions or the buttons on a suggestion's page, never by editing the row.
    """

    list_display = (
        "dataset_field",
        "suggested_level",
        "pii_type_list",
        "hit_ratio_shown",
        "values_with_pii",
        "values_scanned",
        "status",
        "updated_at",
    )
    list_filter = ("status", "suggested_level")
    list_select_related = ("dataset_field__dataset", "suggested_level")
    dataset_lookup = "dataset_field__dataset"  # its examples are excerpts of records
    fields = (
        "dataset_field",
        "suggested_level",
        "status",
        "pii_type_list",
        "hit_ratio_shown",
        "values_with_pii",
        "values_scanned",
        "masked_examples",
        "run",
        "decided_by",
        "decided_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("pii_type_list", "hit_ratio_shown", "masked_examples", "created_at")
    actions = ("accept_selected", "reject_selected")

    @admin.display(description="PII types (values)")
    def pii_type_list(self, suggestion: ClassificationSuggestion) -> str:
        counts = suggestion.hits_by_type or {}
        return (
            ", ".join(
                f"{pii_type} ({counts[pii_type]:,})" if pii_type in counts else pii_type
                for pii_type in suggestion.pii_types
            )
            or "-"
        )

    @admin.display(description="hit ratio")
    def hit_ratio_shown(self, suggestion: ClassificationSuggestion) -> str:
        return f"{suggestion.hit_ratio:.1%}"

    @admin.display(description="examples (masked)")
    def masked_examples(self, suggestion: ClassificationSuggestion) -> str:
        if not suggestion.examples:
            return "-"
        items = format_html_join(
            "",
            '<li><span class="pii-type">{}</span> <code>{}</code></li>',
            ((pii_type or "PII", excerpt) for pii_type, excerpt in suggestion.examples_by_type()),
        )
        return format_html('<ul class="masked-examples">{}</ul>', items)

    def has_decide_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("compliance.change_classificationsuggestion")

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_decide"
        view = self.admin_site.admin_view(self.decide_view)
        return [path("<path:object_id>/decide/", view, name=name), *super().get_urls()]

    def _decide(self, request, suggestion, *, decision: str, reason: str = "", level=None):
        """Accept or reject through the services; True when done, else a message says why."""
        try:
            if decision == "accept":
                accept_suggestion(suggestion, actor=request.user, level=level, reason=reason)
            else:
                reject_suggestion(suggestion, actor=request.user, reason=reason)
        # Named by its field: the suggestion's own name ends with a question mark.
        except PermissionDenied as error:  # e.g. a steward accepting below the current level
            self.message_user(request, f"Field {suggestion.dataset_field}: {error}", messages.ERROR)
            return False
        except ValidationError as error:
            self.message_user(
                request,
                f"Field {suggestion.dataset_field}: {' '.join(error.messages)}",
                messages.ERROR,
            )
            return False
        self.log_change(request, suggestion, f"{decision}ed")
        return True

    def decide_view(self, request, object_id):
        """POST decision=accept|reject (+ level, reason) from the suggestion's page."""
        if not self.has_decide_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        suggestion = self.get_object(request, unquote(object_id))
        if suggestion is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[suggestion.pk]
        )
        form = DecisionForm(request.POST)
        if not form.is_valid():
            for field, field_errors in form.errors.items():
                self.message_user(request, f"{field}: {' '.join(field_errors)}", messages.ERROR)
            return HttpResponseRedirect(change_url)
        decision = form.cleaned_data["decision"]
        if self._decide(
            request,
            suggestion,
            decision=decision,
            reason=form.cleaned_data["reason"],
            level=form.cleaned_data["level"],
        ):
            suggestion.refresh_from_db()
            field = suggestion.dataset_field
            if decision == "accept":
                done = f"{field} is now classified {field.classification.name}."
            else:
                done = f"Rejected: {field} is not suggested again unless its evidence changes."
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(change_url)

    @admin.action(
        description="Accept selected suggestions (classify their fields)", permissions=["decide"]
    )
    def accept_selected(self, request, queryset):
        done = sum(
            self._decide(request, suggestion, decision="accept")
            for suggestion in queryset.select_related("dataset_field", "suggested_level")
        )
        if done:
            self.message_user(request, f"{done} suggestion(s) accepted.", messages.SUCCESS)

    @admin.action(description="Reject selected suggestions…", permissions=["decide"])
    def reject_selected(self, request, queryset):
        """Asks for the reason first (an intermediate page), then rejects each one."""
        form = RejectForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            done = sum(
                self._decide(request, suggestion, decision="reject", reason=reason)
                for suggestion in queryset
            )
            if done:
                self.message_user(request, f"{done} suggestion(s) rejected.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject classification suggestions",
            "opts": self.opts,
            "form": form,
            "suggestions": queryset.select_related("dataset_field__dataset", "suggested_level"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/compliance/classificationsuggestion/reject_selected.html", context
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        context = {**(extra_context or {})}
        suggestion = self.get_object(request, unquote(object_id)) if object_id else None
        if suggestion is not None:
            context["decision_form"] = (
                DecisionForm(initial={"level": suggestion.suggested_level_id})
                if self.has_decide_permission(request)
                else None
            )
            context["decide_url"] = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_decide",
                args=[object_id],
            )
            if suggestion.status != SuggestionStatus.OPEN:
                context["decision_note"] = decision_note(suggestion=suggestion)
        return super().changeform_view(request, object_id, form_url, context)


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


# How far back the audit log's free-text search reads (a quarter's partitions or two).
FREE_TEXT_DAYS = 90


@admin.register(AuditLog)
class AuditLogAdmin(LargeTableAdmin, ReadOnlyAdmin):
    """Append-only: viewed here, never added, changed or deleted (the database refuses too)."""

    list_display = ("at", "actor", "action", "object_link", "what_changed")
    # The `at` ranges are constant bounds on the partition key: only the quarters in
    # range are read. No date_hierarchy: it runs a DISTINCT over every row's date.
    list_filter = (("at", DateRangeFilter), "action", ObjectTypeFilter)
    # Ids grow with time, and (id, at) is indexed: "newest first" without a sort.
    ordering = ("-id",)
    search_fields = ("actor", "object_id")
    search_help_text = (
        "A user name or object id (any time), or words of the object's name or the entry's "
        f"detail (the last {FREE_TEXT_DAYS} days)."
    )
    fields = (
        "at",
        "actor",
        "actor_id",
        "action",
        "object_type",
        "object_id",
        "object_link",
        "changes_table",
        "detail",
        "before_values",
        "after_values",
        "remote_addr",
        "user_agent",
    )
    readonly_fields = ("object_link", "changes_table", "before_values", "after_values")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # Related objects named for the whole page at once (one query per model).
            page = list(changelist.result_list)
            changes = readable_changes(page)
            for entry in page:
                entry.changes = changes.get(entry.pk, [])
        return response

    @admin.display(description="object")
    def object_link(self, entry: AuditLog) -> str:
        name = entry.object_repr or f"{entry.object_type} {entry.object_id}".strip()
        url = self._object_url(entry)
        return format_html('<a href="{}">{}</a>', url, name) if url else name

    def _object_url(self, entry: AuditLog) -> str | None:
        try:
            model = apps.get_model(entry.object_type)
        except (LookupError, ValueError):
            return None
        if model not in self.admin_site._registry or not entry.object_id:
            return None
        try:
            return reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
                args=[entry.object_id],
            )
        except NoReverseMatch:
            return None

    @admin.display(description="what changed")
    def what_changed(self, entry: AuditLog) -> str:
        changes = getattr(entry, "changes", None)
        if changes is None:
            changes = readable_changes([entry]).get(entry.pk, [])
        parts = [
            f"{c.field}: {c.before} → {c.after}"
            if c.before and c.after
            else f"{c.field}: {c.after or c.before}"
            for c in changes[:4]
        ]
        more = f" (+{len(changes) - 4} more)" if len(changes) > 4 else ""
        text = "; ".join(parts) + more
        return text if len(text) <= 200 else text[:199] + "…"

    @admin.display(description="changes")
    def changes_table(self, entry: AuditLog) -> str:
        changes = readable_changes([entry]).get(entry.pk, [])
        if not changes:
            return "-"
        rows = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>',
            ((c.field, c.before or "—", c.after or "—") for c in changes),
        )
        return format_html(
            '<table class="atlas-diff"><thead><tr><th>field</th><th>before</th>'
            "<th>after</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="before")
    def before_values(self, entry: AuditLog) -> str:
        return _pretty_json(entry.before)

    @admin.display(description="after")
    def after_values(self, entry: AuditLog) -> str:
        return _pretty_json(entry.after)

    def get_search_results(self, request, queryset, search_term):
        # User names and object ids exactly, any time; words of the object's name or the
        # detail only over the recent quarters: a substring search (ILIKE) over the whole
        # log would read every partition.
        term = search_term.strip()
        if not term:
            return queryset, False
        recent = timezone.now() - timedelta(days=FREE_TEXT_DAYS)
        words = Q(at__gte=recent) & (Q(object_repr__icontains=term) | Q(detail__icontains=term))
        return queryset.filter(Q(actor=term) | Q(object_id=term) | words), False


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
                self.audit_save(request, user, before)
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    pass
