import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.forms import formset_factory
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from atlas_site.admin_base import AuditedModelAdmin, LargeTableAdmin, ReadOnlyAdmin
from atlas_site.formats import plain_decimal
from atlas_site.forms import IsoDurationField, PlainDecimalField
from chart import inference
from chart import selectors as chart_selectors
from dashboards.selectors.home import STATES, dataset_cards, dataset_ids_in_state
from explore import selectors as explore_selectors
from explore.admin_ingest import ApiTokenAdmin, DatasetIngestAdminMixin
from explore.services import BatchNotRetryableError, retry_batch
from governance.compliance.models import ClassificationLevel
from governance.compliance.pii.masking import mask_matches
from governance.compliance.pii.scanner import load_patterns, scan_value
from governance.pipeline import selectors
from governance.pipeline.classification import (
    change_field_classification,
    check_classification_change,
    check_field_removal,
    remove_dataset_field,
)
from governance.pipeline.contracts import (
    ContractError,
    import_contracts,
    parse_contract_text,
    preview_contracts,
)
from governance.pipeline.models import (
    ApiToken,
    Dataset,
    DatasetField,
    FieldType,
    LineageEdge,
    Run,
    RunStep,
    Watermark,
)
from governance.pipeline.services import request_promotion
from governance.quality import selectors as quality_selectors
from governance.quality.models import DimensionCode
from orchestration.pending import has_work_to_promote

SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def sparkline(values: list[Decimal | None]) -> str:
    """SVG polyline points of scores (0 to 1) drawn left to right; gaps are skipped."""
    if not values:
        return ""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{SPARK_HEIGHT - float(value) * SPARK_HEIGHT:.1f}"
        for index, value in enumerate(values)
        if value is not None
    )


def spark_end(values: list[Decimal | None]) -> tuple[str, str] | None:
    """Where the latest value sits: marked with a dot, so a single run still shows."""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    for index in range(len(values) - 1, -1, -1):
        if values[index] is not None:
            y = SPARK_HEIGHT - float(values[index]) * SPARK_HEIGHT
            return f"{index * step:.1f}", f"{y:.1f}"
    return None


def duration_text(duration: timedelta | None) -> str:
    """'0.12 s', '3 min 05 s', '2 h 01 min': how long, as a person reads it."""
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def quality_trend(points: list[quality_selectors.ScorePoint]) -> list[dict]:
    """One row per dimension (and overall): its values over the runs, and a sparkline."""
    series = [("overall", "Overall", [p.overall for p in points])] + [
        (code, label, [p.dimensions.get(code) for p in points])
        for code, label in DimensionCode.choices
    ]
    return [
        {
            "code": code,
            "label": label,
            "values": values,
            "latest": next((v for v in reversed(values) if v is not None), None),
            "points": sparkline(values),
            "end": spark_end(values),
        }
        for code, label, values in series
        if any(v is not None for v in values)
    ]


# --- Contract fields and their classification ----------------------------------------
#
# Every classification change and every removal of a classified field goes through
# governance.pipeline.classification: raising is open to stewards, lowering is a
# compliance officer's decision with a reason, audited by level names. The forms check
# it first, so a refusal is a form error on the page, not an error page.


class ContractImportForm(forms.Form):
    """A contract file, or the text of one already previewed (sent back to import)."""

    file = forms.FileField(
        required=False,
        help_text="YAML or JSON, Atlas or ODCS v3, as manage.py import_contract reads.",
    )
    text = forms.CharField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Needed when the file lowers a classification or removes a classified "
        "field (a compliance officer's decision); kept in the audit log.",
    )

    MAX_BYTES = 1024 * 1024

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is None and not data.get("text"):
            raise ValidationError("Choose a contract file.")
        if upload is not None and upload.size > self.MAX_BYTES:
            raise ValidationError(f"A contract file is at most {self.MAX_BYTES // 1024} KiB.")
        return data

    def contract_text(self) -> tuple[str, str]:
        """The contract's text and file name (the upload, or the text previewed)."""
        upload = self.cleaned_data.get("file")
        if upload is None:
            return self.cleaned_data["text"], self.cleaned_data.get("name") or ""
        raw = upload.read()
        try:
            return raw.decode("utf-8"), upload.name
        except UnicodeDecodeError as error:
            raise ContractError([f"{upload.name} is not UTF-8 text ({error.reason})"]) from None


# --- A contract inferred from a sample file (chart.inference) --------------------------


class SampleUploadForm(forms.Form):
    """A sample file and the new dataset's slug and name."""

    file = forms.FileField(
        label="Sample file",
        help_text="CSV with a header row, JSON Lines or a JSON array (optionally .gz), as "
        "a load accepts.",
    )
    slug = forms.SlugField(max_length=80, help_text="The new dataset's slug.")
    name = forms.CharField(
        max_length=200, required=False, help_text="Its name (blank: made from the slug)."
    )

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        problem = inference.slug_in_use(slug)
        if problem:
            raise ValidationError(problem)
        return slug

    def clean_name(self):
        name = self.cleaned_data.get("name")
        slug = self.cleaned_data.get("slug") or self.data.get("slug") or ""
        return name or slug.replace("-", " ").replace("_", " ").capitalize()


class ProposedFieldForm(forms.Form):
    """One proposed field as the steward edits it. Text in, contract values out: what
    is valid is decided by the contract's own checks (governance.pipeline.contracts),
    which locate each error."""

    column = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    keep = forms.BooleanField(required=False, initial=True)
    name = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 14}))
    data_type = forms.CharField(label="Type", widget=forms.Select(choices=FieldType.choices))
    required = forms.BooleanField(required=False)
    unique = forms.BooleanField(required=False)
    allowed_values = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 14}),
        help_text="One per line.",
    )
    minimum = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 8}))
    maximum = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 8}))
    max_length = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 5}))
    classification = forms.CharField(required=False, widget=forms.Select)

    def __init__(self, *args, levels: Iterable[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classification"].widget.choices = [("", "—"), *((n, n) for n in levels)]

    def contract_entry(self) -> dict:
        data = self.cleaned_data
        length = data["max_length"]
        return inference.contract_field(
            name=data["name"],
            data_type=data["data_type"],
            required=data["required"],
            unique=data["unique"],
            allowed_values=[
                line.strip() for line in data["allowed_values"].splitlines() if line.strip()
            ],
            minimum=data["minimum"] or None,
            maximum=data["maximum"] or None,
            max_length=int(length) if length.isdigit() else (length or None),
            classification=data["classification"] or None,
        )

    @classmethod
    def initial_of(cls, column: int, proposed: inference.ProposedField) -> dict:
        def bound(value):
            return "" if value is None else plain_decimal(value)

        return {
            "column": column,
            "keep": True,
            "name": proposed.name,
            "data_type": proposed.data_type,
            "required": proposed.required,
            "unique": proposed.unique,
            "allowed_values": "\n".join(proposed.allowed_values),
            "minimum": bound(proposed.minimum),
            "maximum": bound(proposed.maximum),
            "max_length": proposed.max_length or "",
            "classification": proposed.classification or "",
        }


ProposedFieldFormSet = formset_factory(ProposedFieldForm, extra=0)


class ProposalForm(forms.Form):
    """The new dataset's slug and name, and the sample's evidence (signed: counts, notes
    and masked excerpts, carried from the upload to the save)."""

    slug = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 30}))
    name = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 40}))
    evidence = forms.CharField(widget=forms.HiddenInput)

    SALT = "atlas.pipeline.infer-contract"
    MAX_AGE = 24 * 3600  # seconds a proposal page may be saved after its upload

    @staticmethod
    def evidence_of(proposal: inference.Proposal) -> dict:
        return {
            "filename": proposal.filename,
            "format": proposal.format,
            "records": proposal.records,
            "more": proposal.more,
            "warnings": proposal.warnings,
            "fields": [proposed.evidence() for proposed in proposal.fields],
        }

    @classmethod
    def sign(cls, evidence: dict) -> str:
        return signing.dumps(evidence, salt=cls.SALT, compress=True)

    def clean_evidence(self):
        try:
            return signing.loads(
                self.cleaned_data["evidence"], salt=self.SALT, max_age=self.MAX_AGE
            )
        except signing.BadSignature:
            raise ValidationError(
                "This proposal has expired or was altered: upload the sample again."
            ) from None


_FIELD_INDEX = re.compile(r"fields\[(\d+)\]")


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


class DatasetStateFilter(admin.SimpleListFilter):
    """Datasets failing, below their threshold, stale or with open quarantine (their cards,
    dashboards.selectors.home: index probes only, cheap on thousands of datasets)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return list(STATES.items())

    def queryset(self, request, queryset):
        if self.value() not in STATES:
            return queryset
        return queryset.filter(pk__in=dataset_ids_in_state(self.value(), timezone.now()))


@admin.register(Dataset)
class DatasetAdmin(DatasetIngestAdminMixin, AuditedModelAdmin):
    list_display = (
        "slug",
        "name",
        "owner",
        "last_run",
        "quality",
        "open_quarantine",
        "most_sensitive_level",
        "gate_action",
        "is_active",
    )
    list_filter = (DatasetStateFilter, "is_active", "gate_action", "auto_promote")
    # The freshness target as ISO 8601 (P7D), the threshold as written (0.95).
    formfield_overrides = {
        models.DurationField: {"form_class": IsoDurationField},
        models.DecimalField: {"form_class": PlainDecimalField},
    }
    list_select_related = ("owner",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("slug", "name", "description", "owner", "is_active")}),
        ("Contract", {"fields": ("business_key", "event_time_field", "country")}),
        ("Quality gate", {"fields": ("quality_threshold", "gate_action")}),
        ("Schedule", {"fields": ("schedule", "auto_promote", "freshness_target")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (DatasetFieldInline,)
    actions = ("promote_now",)

    def save_formset(self, request, form, formset, change):
        if formset.model is not DatasetField:
            return super().save_formset(request, form, formset, change)
        return save_contract_fields(self, request, formset)

    @admin.action(description="Promote now: explore → chart → navigate", permissions=["promote"])
    def promote_now(self, request, queryset):
        runs, idle = [], []
        for dataset in queryset:
            if not has_work_to_promote(dataset=dataset):
                idle.append(dataset.slug)
                continue
            runs.append(
                request_promotion(dataset=dataset, triggered_by="admin", actor=request.user)
            )
        if runs:
            self.message_user(
                request,
                "Queued " + ", ".join(f"run {run.pk} ({run.dataset.slug})" for run in runs) + ".",
                messages.SUCCESS,
            )
        if idle:
            self.message_user(request, f"Nothing new to promote in {', '.join(idle)}.")

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm("pipeline.add_run")

    # --- The dataset's page: overview, promote, retry ----------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/promote/",
                self.admin_site.admin_view(require_POST(self.promote_view)),
                name="{}_{}_promote".format(*info),
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="{}_{}_retry".format(*info),
            ),
            path(
                "import-contract/",
                self.admin_site.admin_view(self.import_contract_view),
                name="{}_{}_import_contract".format(*info),
            ),
            path(
                "infer-contract/",
                self.admin_site.admin_view(self.infer_contract_view),
                name="{}_{}_infer_contract".format(*info),
            ),
            *super().get_urls(),
        ]

    # --- Importing a contract file: preview, then import ------------------------------

    def has_import_permission(self, request) -> bool:
        return request.user.has_perm("pipeline.add_dataset") and request.user.has_perm(
            "pipeline.change_dataset"
        )

    def import_contract_view(self, request):
        """A contract file (YAML or JSON, one or several contracts): previewed first (what
        would be created, changed, removed; or every error with its place), imported once
        the steward confirms the very text previewed."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = ContractImportForm(request.POST or None, request.FILES or None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import a contract",
            "form": form,
        }
        if request.method == "POST" and form.is_valid():
            text, name = form.contract_text()
            reason = form.cleaned_data["reason"]
            try:
                documents = parse_contract_text(text, filename=name)
                if request.POST.get("confirm") == "import":
                    results = import_contracts(
                        documents=documents, actor=request.user, source=name, reason=reason
                    )
                    for result in results:
                        self.message_user(request, result.summary(), messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse(
                            "admin:pipeline_dataset_changelist", current_app=self.admin_site.name
                        )
                    )
                context["preview"] = preview_contracts(
                    documents=documents, actor=request.user, reason=reason
                )
                context["text"], context["name"] = text, name
            except ContractError as error:
                context["errors"] = error.errors
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/pipeline/dataset/import_contract.html", context)

    # --- A contract inferred from a sample: upload, edit the proposal, save -----------

    INFER_TEMPLATE = "admin/pipeline/dataset/infer_contract.html"

    def infer_contract_view(self, request):
        """A sample file in, a proposed contract out (chart.inference): each field an
        editable row beside its evidence; saved through the contract import path (the
        same checks, located errors and audit entry as a contract file), or downloaded
        as the contract file saving would create. Only who may add datasets."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Infer a contract from a sample",
            "max_mib": inference.SAMPLE_MAX_BYTES // (1024 * 1024),
            "max_records": inference.SAMPLE_MAX_RECORDS,
            "enum_max": inference.ENUM_MAX_VALUES,
        }
        if request.method == "POST" and request.POST.get("step") in ("save", "download"):
            return self._proposal_submitted(request, context, request.POST["step"])
        upload = SampleUploadForm(request.POST or None, request.FILES or None)
        context["upload"] = upload
        if request.method == "POST" and upload.is_valid():
            data = upload.cleaned_data
            try:
                proposal = inference.infer_contract(
                    file=data["file"],
                    filename=data["file"].name,
                    slug=data["slug"],
                    name=data["name"],
                )
            except inference.SampleError as error:
                context["sample_errors"] = error.errors
            else:
                levels = self._level_names()
                formset = ProposedFieldFormSet(
                    initial=[
                        ProposedFieldForm.initial_of(column, proposed)
                        for column, proposed in enumerate(proposal.fields)
                    ],
                    prefix="fields",
                    form_kwargs={"levels": levels},
                )
                evidence = ProposalForm.evidence_of(proposal)
                form = ProposalForm(
                    initial={
                        "slug": proposal.slug,
                        "name": proposal.name,
                        "evidence": ProposalForm.sign(evidence),
                    }
                )
                return self._proposal_page(request, context, form, formset, evidence, [])
        return TemplateResponse(request, self.INFER_TEMPLATE, context)

    @staticmethod
    def _level_names() -> list[str]:
        return list(ClassificationLevel.objects.order_by("rank").values_list("name", flat=True))

    def _proposal_submitted(self, request, context, step: str):
        form = ProposalForm(request.POST)
        formset = ProposedFieldFormSet(
            request.POST, prefix="fields", form_kwargs={"levels": self._level_names()}
        )
        columns = len((form.is_valid() and form.cleaned_data["evidence"]["fields"]) or [])
        if (
            not form.is_valid()
            or not formset.is_valid()
            or any(item.cleaned_data["column"] >= columns for item in formset.forms)
        ):
            # Only a proposal altered, expired or cut short ends here: its rows take text.
            context["upload"] = SampleUploadForm()
            context["sample_errors"] = form.errors.get("evidence") or [
                "The proposal arrived incomplete: upload the sample again."
            ]
            return TemplateResponse(request, self.INFER_TEMPLATE, context, status=400)
        evidence = form.cleaned_data["evidence"]
        kept = [row for row, item in enumerate(formset.forms) if item.cleaned_data.get("keep")]
        slug, name = form.cleaned_data["slug"], form.cleaned_data["name"]
        document = inference.contract_document(
            slug=slug, name=name, fields=[formset.forms[row].contract_entry() for row in kept]
        )
        try:
            if step == "download":
                text = inference.contract_file(document=document, actor=request.user)
                return HttpResponse(
                    text,
                    content_type="application/yaml; charset=utf-8",
                    headers={
                        "Content-Disposition": content_disposition_header(
                            True, f"{slugify(slug) or 'dataset'}.contract.yaml"
                        )
                    },
                )
            result = inference.create_dataset_from_contract(
                document=document,
                actor=request.user,
                source=f"a sample file ({evidence['filename']})",
            )
        except ContractError as error:
            return self._proposal_page(
                request, context, form, formset, evidence, error.errors, kept=kept
            )
        self.message_user(
            request,
            f"{result.summary()}, as inferred from {evidence['filename']}.",
            messages.SUCCESS,
        )
        return self._back(result.dataset)

    def _proposal_page(self, request, context, form, formset, evidence, errors, kept=None):
        """The proposal: a row per field with its evidence; each contract error also on
        the row it names (a located error counts only the rows kept)."""
        kept = list(range(len(formset.forms))) if kept is None else kept
        fields = evidence["fields"]
        rows = [
            {
                "form": item,
                "evidence": fields[
                    item.cleaned_data["column"] if item.is_bound else item.initial["column"]
                ],
                "errors": [],
            }
            for item in formset.forms
        ]
        for error in errors:
            found = _FIELD_INDEX.match(error)
            if found and int(found.group(1)) < len(kept):
                rows[kept[int(found.group(1))]]["errors"].append(error)
        context.update(
            {
                "proposal": form,
                "formset": formset,
                "rows": rows,
                "sample": evidence,
                "errors": errors,
                "title": "Proposed contract",
            }
        )
        return TemplateResponse(request, self.INFER_TEMPLATE, context)

    def batch_promotion(self, request, batch):
        promotion = chart_selectors.batch_promotion(batch=batch)
        if promotion is None or promotion["state"] != "promoted":
            return promotion
        if promotion["run_id"] and request.user.has_perm("pipeline.view_run"):
            promotion["run_url"] = reverse("admin:pipeline_run_change", args=[promotion["run_id"]])
        if promotion["quarantined"] and request.user.has_perm("chart.view_quarantinedrecord"):
            promotion["quarantine_url"] = (
                reverse("admin:chart_quarantinedrecord_changelist")
                + f"?dataset__id__exact={batch.dataset_id}&status__exact=open"
            )
        return promotion

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # The state columns of the page's datasets, read in one query (index probes)
            # and put on the very objects the list draws.
            page = list(changelist.result_list)
            cards = {
                card.id: card
                for card in dataset_cards(
                    dataset_ids=[dataset.pk for dataset in page], limit=None, active_only=False
                )
            }
            for dataset in page:
                dataset.card = cards.get(dataset.pk)
        return response

    @admin.display(description="Last run")
    def last_run(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or card.last_run_id is None:
            return "none yet"
        text = f"{card.last_run_status_label} ({card.last_run_at:%Y-%m-%d %H:%M})"
        return (
            format_html('<strong class="atlas-failing">{}</strong>', text) if card.failing else text
        )

    @admin.display(description="Quality (threshold)")
    def quality(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or card.score is None:
            return "not scored yet"
        text = f"{card.score:.3f} ({card.threshold:.3f})"
        return (
            format_html('<strong class="atlas-failing">{}</strong>', text)
            if card.below_threshold
            else text
        )

    @admin.display(description="Open quarantine")
    def open_quarantine(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        if card is None or not card.open_quarantine:
            return "0"
        return f"{card.open_quarantine:,}{'+' if card.open_quarantine_capped else ''}"

    @admin.display(description="Most sensitive level")
    def most_sensitive_level(self, dataset: Dataset) -> str:
        card = getattr(dataset, "card", None)
        return (card.level if card is not None else None) or "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if dataset is not None:
            context.update(self.overview_context(request, dataset))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def overview_context(self, request, dataset: Dataset) -> dict:
        failed_batches = explore_selectors.failed_batches(dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = self.has_promote_permission(request)
        readable = selectors.readable_dataset_ids(request.user)
        pii_summary = chart_selectors.pii_summary(dataset=dataset)
        if readable is not None and dataset.pk not in readable:
            # A dataset limited to groups: counts, but no excerpt of its records.
            pii_summary = [replace(item, examples=[]) for item in pii_summary]
        return {
            "contract_fields": list(
                DatasetField.objects.filter(dataset=dataset).select_related("classification")
            ),
            "recent_runs": [
                {"run": run, "duration": duration_text(run.duration)}
                for run in selectors.recent_runs(dataset=dataset)
            ],
            "quality_trend": quality_trend(quality_selectors.score_trend(dataset=dataset)),
            "spark_width": SPARK_WIDTH,
            "spark_height": SPARK_HEIGHT,
            "pii_summary": pii_summary,
            "pii_runs": chart_selectors.PII_RECENT_RUNS,
            "lineage": selectors.dataset_lineage(dataset=dataset),
            "failed_batches": failed_batches,
            "failed_promotion": failed_promotion,
            "may_promote": may_promote,
            "may_retry": (
                failed_batches and explore_selectors.can_ingest(user=request.user, dataset=dataset)
            )
            or (failed_promotion is not None and may_promote),
        }

    def _dataset_for(self, request, object_id) -> Dataset:
        dataset = self.get_object(request, unquote(object_id))
        if dataset is None:
            raise Http404("No such dataset.")
        return dataset

    def _back(self, dataset: Dataset) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(
                "admin:pipeline_dataset_change", args=[dataset.pk], current_app=self.admin_site.name
            )
        )

    def _run_link(self, run: Run) -> str:
        url = reverse("admin:pipeline_run_change", args=[run.pk], current_app=self.admin_site.name)
        return format_html('<a href="{}">run {}</a>', url, run.pk)

    def promote_view(self, request, object_id):
        dataset = self._dataset_for(request, object_id)
        if not self.has_promote_permission(request):
            raise PermissionDenied
        if not has_work_to_promote(dataset=dataset):
            # No run for nothing: every landed record is in chart or quarantine, every
            # chart record in the facts, every metric computed.
            messages.info(request, "Nothing new to promote.")
            return self._back(dataset)
        run = request_promotion(dataset=dataset, triggered_by="admin", actor=request.user)
        self.log_change(request, dataset, f"Requested promotion (run {run.pk}).")
        messages.success(
            request, format_html("Queued {}: explore → chart → navigate.", self._run_link(run))
        )
        return self._back(dataset)

    def retry_view(self, request, object_id):
        """Load the failed batches again and, when the last promotion failed, promote again.

        A promotion resumes from its watermark, so a new run is the retry of a failed one.
        """
        dataset = self._dataset_for(request, object_id)
        may_load = explore_selectors.can_ingest(user=request.user, dataset=dataset)
        failed_promotion = selectors.failed_promotion(dataset=dataset)
        may_promote = failed_promotion is not None and self.has_promote_permission(request)
        if not may_load and not may_promote:
            raise PermissionDenied
        retried = 0
        for batch in explore_selectors.failed_batches(dataset=dataset) if may_load else []:
            try:
                retry_batch(batch=batch, actor=request.user)
            except BatchNotRetryableError:
                continue  # another steward retried it meanwhile
            retried += 1
        if retried:
            self.log_change(request, dataset, f"Retried {retried} failed batch(es).")
            messages.success(request, f"{retried} failed batch(es) queued to load again.")
        if may_promote:
            run = request_promotion(dataset=dataset, triggered_by="admin-retry", actor=request.user)
            self.log_change(
                request, dataset, f"Retried failed run {failed_promotion.pk} as run {run.pk}."
            )
            messages.success(
                request,
                format_html(
                    "Promotion retried: {} failed, {} queued.",
                    self._run_link(failed_promotion),
                    self._run_link(run),
                ),
            )
        if not retried and not may_promote:
            messages.info(request, "Nothing to retry: no failed load or promotion.")
        return self._back(dataset)


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
                model_admin._delete_one(request, obj)
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
                model_admin._audit_save(request, obj, before)
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


def with_masked_examples(checks: list) -> list[dict]:
    """Each failed check with its examples, any PII left in their text masked for display.

    The promotion protects every excerpt at its field's level before storing it; examples
    stored before Atlas did may still hold PII, so the page scans and masks what it shows.
    """
    patterns = load_patterns()

    def masked(text) -> str:
        text = "" if text is None else str(text)
        matches = scan_value(text, patterns)
        return mask_matches(text, matches) if matches else text

    return [
        {
            "check": check,
            "examples": [
                {
                    "raw_record": example.get("raw_record"),
                    "field": example.get("field") or "(record)",
                    "message": masked(example.get("message")),
                    "value_excerpt": masked(example.get("value_excerpt")),
                }
                for example in check.failing_examples or []
                if isinstance(example, dict)
            ],
        }
        for check in checks
    ]


class RunStepInline(admin.TabularInline):
    model = RunStep
    extra = 0
    fields = ("name", "status", "started_at", "finished_at", "rows")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "dataset",
        "kind",
        "status",
        "triggered_by",
        "created_at",
        "rows_in",
        "rows_promoted",
        "rows_quarantined",
    )
    list_filter = ("status", "kind", "dataset")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset", "started_by")
    ordering = ("-id",)
    inlines = (RunStepInline,)
    change_form_template = "admin/pipeline/run/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if run is not None:
            overview = quality_selectors.run_overview(run=run)
            context["overview"] = overview
            context["timing"] = {
                "waited": duration_text(overview.waited),
                "duration": duration_text(overview.duration),
                "steps": [
                    {"step": item.step, "duration": duration_text(item.duration)}
                    for item in overview.steps
                ],
            }
            readable = selectors.readable_dataset_ids(request.user)
            context["failed_rules"] = (
                with_masked_examples(overview.failed_checks)
                if readable is None or run.dataset_id in readable
                else []
            )
            context["quarantine_url"] = (
                reverse(
                    "admin:chart_quarantinedrecord_changelist", current_app=self.admin_site.name
                )
                + f"?run={run.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context=context)


@admin.register(RunStep)
class RunStepAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ("id", "run", "name", "status", "started_at", "finished_at", "rows")
    list_filter = ("status",)
    list_select_related = ("run",)
    raw_id_fields = ("run",)
    ordering = ("-id",)


@admin.register(Watermark)
class WatermarkAdmin(ReadOnlyAdmin):
    list_display = ("dataset", "layer", "position", "updated_at")
    list_filter = ("layer", "dataset")
    list_select_related = ("dataset",)


@admin.register(LineageEdge)
class LineageEdgeAdmin(ReadOnlyAdmin):
    list_display = (
        "dataset",
        "source_layer",
        "source_field",
        "target_layer",
        "target_name",
        "transform",
        "last_seen_at",
    )
    list_filter = ("source_layer", "target_layer", "transform", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("source_field", "target_name")


# Issuing shows the token once and stores its digest; revoking is an action.
admin.site.register(ApiToken, ApiTokenAdmin)

# Tasks set aside after crashing their worker too often (registers its own admin).
# Alert rules and channels (stewards), alerts and notifications (read-only).
import governance.pipeline.admin_alerts  # noqa: E402
import governance.pipeline.admin_dead_letters  # noqa: E402, F401
