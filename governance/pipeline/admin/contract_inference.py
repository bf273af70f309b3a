"""A contract inferred from a sample file (chart.inference), on the datasets' list: the
upload, then the proposal (a row per field beside its evidence, edited by the steward),
saved through the contract import path or downloaded as the contract file saving would
create.

ContractInferenceAdminMixin is mixed into DatasetAdmin (datasets.py), whose get_urls
routes `infer-contract/` to `infer_contract_view`.
"""

import re
from collections.abc import Iterable

from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import formset_factory
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from atlas_site.formats import plain_decimal
from chart import inference
from governance.compliance.models import ClassificationLevel
from governance.pipeline.admin.links import dataset_page_redirect
from governance.pipeline.contracts import ContractError
from governance.pipeline.models import FieldType


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


class ContractInferenceAdminMixin:
    """A dataset admin's inference page: the upload, the proposal, its save or download."""

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
        return dataset_page_redirect(result.dataset, current_app=self.admin_site.name)

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
