"""Importing a contract file on the datasets' list: previewed first, imported once the
steward confirms the very text previewed (governance.pipeline.contracts).

ContractImportAdminMixin is mixed into DatasetAdmin (datasets.py), whose get_urls routes
`import-contract/` to `import_contract_view`.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from governance.pipeline.contracts import (
    ContractError,
    import_contracts,
    parse_contract_text,
    preview_contracts,
)


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


class ContractImportAdminMixin:
    """A dataset admin's import page: who may import, the preview, then the import."""

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
