"""Contract fields and their classification: the contract edited on a dataset's page
(DatasetFieldInline, saved by save_contract_fields) and every field of every contract in
one list (DatasetFieldAdmin), where compliance officers set classifications.

Every classification change and every removal of a classified field goes through
governance.pipeline.classification: raising is open to stewards, lowering is a
compliance officer's decision with a reason, audited by level names. The forms check
it first, so a refusal is a form error on the page, not an error page.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet

from atlas_site.admin_base import AuditedModelAdmin
from atlas_site.forms import PlainDecimalField
from governance.pipeline.classification import (
    change_field_classification,
    check_classification_change,
    check_field_removal,
    remove_dataset_field,
)
from governance.pipeline.models import Dataset, DatasetField


class DatasetFieldForm(forms.ModelForm):
    """A contract field, with the reason asked of a compliance officer who lowers it."""

    reason = forms.CharField(
        required=False,
        label="Reason for lowering",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 12}),
        help_text="Required to lower or remove a classification (a compliance officer's "
        "decision); kept in the audit log.",
    )
    # The person editing: set on the class built for each request (get_form, get_formset).
    actor = None

    class Meta:
        model = DatasetField
        fields = (
            "dataset",
            "name",
            "position",
            "data_type",
            "required",
            "unique",
            "max_length",
            "allowed_values",
            "pattern",
            "minimum",
            "maximum",
            "classification",
            "country",
            "description",
        )
        # Bounds as written (10000.5, 0), not at the column's scale (10000.5000000000, 0E-10).
        field_classes = {"minimum": PlainDecimalField, "maximum": PlainDecimalField}
        # Narrow inputs: the whole contract row fits a 1,400 px window (the admin's default
        # widths pushed pattern, bounds and classification off screen). Number inputs are
        # narrowed by pipeline/css/overview.css: no inline style (the CSP refuses it).
        widgets = {
            "name": forms.TextInput(attrs={"size": 14}),
            "allowed_values": forms.TextInput(attrs={"size": 16}),
            "pattern": forms.TextInput(attrs={"size": 14}),
            "minimum": forms.TextInput(attrs={"size": 8}),
            "maximum": forms.TextInput(attrs={"size": 8}),
            "country": forms.TextInput(attrs={"size": 3}),
        }

    def clean(self):
        cleaned = super().clean()
        if "classification" not in self.fields or "classification" in self.errors:
            return cleaned
        stored = (
            DatasetField.objects.select_related("classification")
            .filter(pk=self.instance.pk)
            .first()
            if self.instance.pk
            else None
        )
        dataset = getattr(self.instance, "dataset", None) if self.instance.dataset_id else None
        name = cleaned.get("name") or self.instance.name
        try:
            check_classification_change(
                field_label=f"{dataset.slug}.{name}" if dataset else name,
                before=stored.classification if stored else None,
                after=cleaned.get("classification"),
                actor=self.actor,
                reason=cleaned.get("reason") or "",
                creating=stored is None,
            )
        except PermissionDenied as refused:
            self.add_error("classification", str(refused))
        except ValidationError as missing:
            self.add_error("reason", missing)
        return cleaned


class DatasetFieldFormSet(BaseInlineFormSet):
    """Removing a classified field from the contract needs what lowering it needs; the
    dataset's business key and event time field must name fields of the contract as it
    will be after this save (as import_contract requires)."""

    actor = None

    def _names_kept(self) -> set[str]:
        names = set()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            name = (getattr(form, "cleaned_data", None) or {}).get("name")
            if name or form.instance.pk:
                names.add(name or form.instance.name)
        return names

    def _fields_named_by_the_dataset(self) -> list[str]:
        """What this save would leave naming no field: a name it puts in the business key
        or the event time field, or a field it removes that one of them names. (A dataset
        stored before this check with such a name can still be saved otherwise.)"""
        dataset, names = self.instance, self._names_kept()
        stored_key, stored_event_time, stored_fields = [], "", set()
        if dataset.pk:
            stored_key, stored_event_time = Dataset.objects.values_list(
                "business_key", "event_time_field"
            ).get(pk=dataset.pk)
            stored_fields = set(dataset.fields.values_list("name", flat=True))

        def dangling(name: str, stored: list[str]) -> bool:
            return name not in names and (name not in stored or name in stored_fields)

        refused = [
            f"Business key: {key!r} is not a field of the contract; add the field below, "
            "or take it out of the business key."
            for key in dataset.business_key or []
            if dangling(key, stored_key or [])
        ]
        event_time = dataset.event_time_field
        if event_time and dangling(event_time, [stored_event_time]):
            refused.append(
                f"Event time field: {dataset.event_time_field!r} is not a field of the "
                "contract; add the field below, or clear the event time field."
            )
        return refused

    def clean(self):
        super().clean()
        refused = self._fields_named_by_the_dataset()
        for form in self.forms:
            if not (self.can_delete and self._should_delete_form(form)) or not form.instance.pk:
                continue
            reason = (getattr(form, "cleaned_data", None) or {}).get("reason") or ""
            try:
                check_field_removal(field=form.instance, actor=self.actor, reason=reason)
            except PermissionDenied as error:
                refused.append(str(error))
            except ValidationError as error:
                refused.extend(error.messages)
        if refused:
            raise ValidationError(refused)


def reason_of(form) -> str:
    return ((getattr(form, "cleaned_data", None) or {}).get("reason") or "").strip()


class DatasetFieldInline(admin.TabularInline):
    """The dataset's contract, edited on the dataset's page."""

    model = DatasetField
    form = DatasetFieldForm
    formset = DatasetFieldFormSet
    extra = 0
    fields = (
        "position",
        "name",
        "data_type",
        "required",
        "unique",
        "max_length",
        "allowed_values",
        "pattern",
        "minimum",
        "maximum",
        "classification",
        "country",
        "reason",
    )
    ordering = ("position", "name")

    def get_queryset(self, request):
        # Each row names itself by its dataset (DatasetField.__str__) and, for a reader who
        # may only view, shows its level read-only: one query for the rows, not one per row.
        return super().get_queryset(request).select_related("dataset", "classification")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "classification" and formfield is not None:
            # The levels read once for the page: a model choice field would read them again
            # for each row's select (choices set by hand are kept by every row's copy).
            formfield.choices = list(iter(formfield.choices))  # iter: no COUNT first
        return formfield

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # Both classes are built anew for each request: the person is theirs alone.
        formset.actor = formset.form.actor = request.user
        return formset


def save_contract_fields(model_admin: AuditedModelAdmin, request, formset) -> None:
    """Save a contract's field rows: classifications and removals through their rules.

    The rows are saved and audited as any admin save is, their levels left as stored;
    then each new level is set by `change_field_classification` (checked again, audited
    by level names, re-protection queued) and each classified field removed by
    `remove_dataset_field`.
    """
    reasons = {id(form.instance): reason_of(form) for form in formset.forms}
    with transaction.atomic():
        instances = formset.save(commit=False)  # nothing is written or deleted yet
        for obj in formset.deleted_objects:
            if DatasetField.objects.filter(pk=obj.pk, classification__isnull=False).exists():
                remove_dataset_field(field=obj, actor=request.user, reason=reasons[id(obj)])
            else:
                model_admin.delete_audited(request, obj)
        saved = []
        for obj in instances:
            level = obj.classification
            before = None if obj._state.adding else model_admin.stored_snapshot(obj)
            obj.classification_id = before["classification_id"] if before else None
            obj.save()
            saved.append((obj, before, level))
        formset.save_m2m()
        for obj, before, level in saved:
            if before is None or before != model_admin.stored_snapshot(obj, lock=False):
                model_admin.audit_save(request, obj, before)
            change_field_classification(
                field=obj,
                level=level,
                actor=request.user,
                reason=reasons.get(id(obj), ""),
                created=before is None,
            )


@admin.register(DatasetField)
class DatasetFieldAdmin(AuditedModelAdmin):
    """Every field of every contract; where compliance officers set classifications.

    Raising a level is open to stewards; lowering or removing one needs a compliance
    officer and a reason (governance.pipeline.classification). A classified field is
    deleted from its dataset's contract (with a reason) or once unclassified.
    """

    form = DatasetFieldForm
    list_display = ("__str__", "dataset", "position", "data_type", "required", "classification")
    list_filter = ("classification", "data_type", "required", "dataset")
    list_select_related = ("dataset", "classification")
    search_fields = ("name", "dataset__slug")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user  # a class built for this request
        return form

    def save_model(self, request, obj, form, change):
        # The row is saved as stored, level aside; save_related sets the level by the
        # rules once the row's own audit entry is written.
        obj._atlas_pending_level = (obj.classification, reason_of(form), not change)
        stored = DatasetField.objects.filter(pk=obj.pk).values_list("classification_id", flat=True)
        obj.classification_id = stored.first() if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        level, reason, created = obj.__dict__.pop("_atlas_pending_level")
        change_field_classification(
            field=obj, level=level, actor=request.user, reason=reason, created=created
        )

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Shown as what blocks the deletion, which then does not happen (Django's own
        # delete pages refuse to delete while anything is listed as protected).
        classified = [
            f"{field} is classified {field.classification.name}: a compliance officer "
            "removes its classification first (with a reason, on its page), or removes "
            "it from its dataset's contract with a reason"
            for field in objs
            if field.classification_id is not None
        ]
        return deleted, model_count, perms_needed, [*protected, *classified]

    def delete_model(self, request, obj):
        if obj.classification_id is not None:
            remove_dataset_field(field=obj, actor=request.user)  # refuses without a reason
            return
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        classified = queryset.filter(classification__isnull=False).first()
        if classified is not None:
            check_field_removal(field=classified, actor=request.user)  # refuses: no reason
        super().delete_queryset(request, queryset)
