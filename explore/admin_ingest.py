"""Admin pieces of ingestion: upload on a dataset's page, batch progress, retries, API tokens.

How to wire them (the admin classes live in each app's admin module or package):

    # governance/pipeline/admin/datasets.py
    from explore.admin_ingest import DatasetIngestAdminMixin

    @admin.register(Dataset)
    class DatasetAdmin(DatasetIngestAdminMixin, ..., AuditedModelAdmin):
        ...  # unchanged; the mixin comes first so that its get_urls/get_actions run

    # governance/pipeline/admin/tokens.py
    from explore.admin_ingest import ApiTokenAdmin

    admin.site.register(ApiToken, ApiTokenAdmin)  # instead of the read-only one

    # explore/admin.py
    from explore.admin_ingest import LandingBatchAdminMixin

    @admin.register(LandingBatch)
    class LandingBatchAdmin(LandingBatchAdminMixin, LargeTableAdmin, ReadOnlyAdmin):
        ...

What each adds:
- DatasetIngestAdminMixin: an "Upload a file" button on the dataset's change page
  (its change_form_template; a DatasetAdmin with its own template should add the
  link itself: `{% url opts|admin_urlname:'ingest' original.pk|admin_urlquote %}`),
  the upload page `<id>/ingest/` with the dataset's recent batches and the chosen
  batch's progress and outcome (polled by static/explore/js/batch_status.js), and an
  "Export contract" action (YAML download) and its ODCS v3 twin.
- LandingBatchAdminMixin: a "Load again" action for failed batches (retry_batch), and
  a live "Load progress" box on a batch's page.
- ApiTokenAdmin: issuing a token shows it once (only its digest is stored); a
  "Revoke" action. Users see and revoke their own tokens; superusers everyone's, and
  only they may issue a token for another user (e.g. a service account).

Who may upload: explore.selectors.can_ingest (the 'change dataset' permission, or
owning the dataset) — the same rule as the API.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from atlas_site.request_checks import object_or_404, parse_pk
from explore import selectors, services
from explore.models import BatchStatus, LandingBatch
from explore.parsers import FORMATS
from governance.pipeline.contracts import dump_contracts, export_contract
from governance.pipeline.models import ApiToken, Dataset
from governance.pipeline.selectors import dataset_shields

STATUS_SCRIPT = "explore/js/batch_status.js"


class IngestUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with a header row, JSON Lines, or a JSON array of objects; "
        "gzip-compressed (.gz) too."
    )
    format = forms.ChoiceField(
        choices=[("", "From the file name or content"), *[(f, f) for f in FORMATS]],
        required=False,
    )


def _status_box(status_url: str, batch: LandingBatch) -> str:
    """A box that batch_status.js fills in and refreshes until the batch is done."""
    return format_html(
        '<div class="atlas-batch-status" data-status-url="{}" data-status="{}">'
        '<p class="atlas-batch-summary">{}</p>'
        '<progress class="atlas-batch-progress" max="1" hidden></progress>'
        '<p class="atlas-batch-detail"></p><ul class="atlas-batch-warnings"></ul>'
        '<p class="atlas-batch-promotion" hidden></p>'
        '<p class="atlas-batch-error" hidden></p>'
        '</div><script src="{}" defer></script>',
        status_url,
        batch.status,
        batch.get_status_display(),
        static(STATUS_SCRIPT),
    )


def _api_docs_url() -> str:
    try:
        return reverse("api:openapi-view")
    except NoReverseMatch:
        return "/api/docs"


def _contracts_download(queryset, *, fmt: str, suffix: str) -> HttpResponse:
    """The selected datasets' contracts as one YAML file (<slug or contracts>.<suffix>.yaml)."""
    datasets = list(queryset.prefetch_related("fields__classification").select_related("owner"))
    body = dump_contracts(
        [export_contract(dataset) for dataset in datasets],
        fmt=fmt,
        odcs_extras=[dataset.odcs_extras for dataset in datasets],
    )
    name = datasets[0].slug if len(datasets) == 1 else "contracts"
    response = HttpResponse(body, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.{suffix}.yaml"'
    return response


class DatasetIngestAdminMixin:
    """Upload page and contract export for the Dataset admin (see the module docstring)."""

    change_form_template = "admin/explore/dataset_change_form.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/ingest/",
                self.admin_site.admin_view(self.ingest_view),
                name="{}_{}_ingest".format(*info),
            ),
            path(
                "<path:object_id>/ingest/<int:batch_id>/status/",
                self.admin_site.admin_view(self.ingest_status_view),
                name="{}_{}_ingest_status".format(*info),
            ),
            *super().get_urls(),
        ]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        for name in ("export_contracts", "export_contracts_odcs"):
            action = self.get_action(name, action_location)
            if action is not None and self.has_view_permission(request):
                actions[action.name] = action
        return actions

    @admin.action(description="Export the contracts of the selected datasets (YAML)")
    def export_contracts(self, request, queryset):
        return _contracts_download(queryset, fmt="yaml", suffix="contract")

    @admin.action(description="Export the contracts of the selected datasets (ODCS v3 YAML)")
    def export_contracts_odcs(self, request, queryset):
        return _contracts_download(queryset, fmt="odcs", suffix="odcs")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The upload button is shown only to whom may upload (a viewer got a 403 for it).
        dataset = Dataset.objects.filter(pk=parse_pk(Dataset, unquote(object_id))).first()
        context = {
            **(extra_context or {}),
            "may_upload": dataset is not None
            and selectors.can_ingest(user=request.user, dataset=dataset),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _ingest_dataset(self, request, object_id: str) -> Dataset:
        dataset = object_or_404(Dataset.objects.all(), unquote(object_id))  # "abc": a 404
        if not selectors.can_ingest(user=request.user, dataset=dataset):
            raise PermissionDenied
        return dataset

    def ingest_view(self, request, object_id):
        dataset = self._ingest_dataset(request, object_id)
        info = self.opts.app_label, self.opts.model_name
        form = IngestUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = services.store_upload(
                    dataset=dataset,
                    file=upload,
                    filename=upload.name,
                    actor=request.user,
                    format=form.cleaned_data["format"],
                    via="admin",
                )
            except services.DuplicateFileError as exc:
                form.add_error("file", str(exc))
            except services.IngestError as exc:
                form.add_error("file", f"Refused: {exc}")
            else:
                self.log_change(request, dataset, f"Uploaded {upload.name} as batch {batch.pk}.")
                messages.success(
                    request, f"Stored {upload.name} as batch {batch.pk}; it is being loaded."
                )
                url = reverse(
                    f"admin:{info[0]}_{info[1]}_ingest",
                    args=[dataset.pk],
                    current_app=self.admin_site.name,
                )
                return HttpResponseRedirect(f"{url}?batch={batch.pk}")
        request.current_app = self.admin_site.name
        batch = None
        batch_id = parse_pk(LandingBatch, request.GET.get("batch") or None)
        if batch_id is not None:
            batch = self._batches(request, dataset).filter(pk=batch_id).first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": dataset,
            "title": f"Upload a file to {dataset.name}",
            "form": form,
            "batch": batch,
            "status_box": _status_box(
                reverse(
                    f"admin:{info[0]}_{info[1]}_ingest_status",
                    args=[dataset.pk, batch.pk],
                    current_app=self.admin_site.name,
                ),
                batch,
            )
            if batch
            else "",
            "failed_lines": self._failed_lines(request, batch) if batch else [],
            "batches": selectors.recent_batches(dataset=dataset, user=request.user),
            "max_upload_bytes": services.max_upload_bytes(),
            "has_view_permission": self.has_view_permission(request, dataset),
        }
        return TemplateResponse(request, "admin/explore/ingest_upload.html", context)

    @staticmethod
    def _batches(request, dataset: Dataset):
        # Sending files to a dataset is not reading it: of a dataset limited to groups, a
        # sender who is not a reader follows their own batches only.
        return selectors.readable_batches(
            user=request.user, batches=LandingBatch.objects.filter(dataset=dataset)
        )

    @staticmethod
    def _failed_lines(request, batch: LandingBatch) -> list[dict]:
        """The lines that did not parse, each at the dataset's highest level (a line
        without fields cannot be protected field by field), for its readers only."""
        if not selectors.may_read_records(user=request.user, dataset=batch.dataset):
            return []
        shield = dataset_shields(request.user)(batch.dataset_id)
        return [
            {**line, "raw_text": shield.line(line["raw_text"], parsed=False)}
            for line in selectors.failed_lines(batch=batch)
        ]

    def ingest_status_view(self, request, object_id, batch_id):
        dataset = self._ingest_dataset(request, object_id)
        batch = self._batches(request, dataset).filter(pk=batch_id).first()
        if batch is None:
            raise Http404("No such batch of this dataset.")
        status = selectors.batch_status(batch=batch)
        return JsonResponse(
            selectors.follow_promotion(status, self.batch_promotion(request, batch))
        )

    def batch_promotion(self, request, batch: LandingBatch) -> dict | None:
        """How far the batch's records went past explore, with links, for the upload page:
        the Dataset admin above this layer fills it in (chart.selectors.batch_promotion)."""
        return None


class LandingBatchAdminMixin:
    """ "Load again" for failed batches and a live progress box (see the module docstring)."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/status/",
                self.admin_site.admin_view(self.batch_status_view),
                name="{}_{}_status".format(*info),
            ),
            *super().get_urls(),
        ]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        action = self.get_action("retry_failed_batches", action_location)
        if action is not None and request.user.has_perm("explore.change_landingbatch"):
            actions[action.name] = action
        return actions

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None or "load_progress" in fields else (*fields, "load_progress")

    @admin.display(description="Load progress")
    def load_progress(self, obj: LandingBatch) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_status",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        return _status_box(url, obj)

    def batch_status_view(self, request, object_id):
        # Through get_queryset: a batch of a dataset limited to groups is its readers' only.
        batch = object_or_404(
            self.get_queryset(request).select_related("dataset"), unquote(object_id)
        )
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        return JsonResponse(selectors.batch_status(batch=batch))

    @admin.action(description="Load the selected failed batches again")
    def retry_failed_batches(self, request, queryset):
        retried, skipped = 0, 0
        for batch in queryset.select_related("dataset"):
            if batch.status != BatchStatus.FAILED:
                skipped += 1
                continue
            if not selectors.can_ingest(user=request.user, dataset=batch.dataset):
                skipped += 1
                continue
            services.retry_batch(batch=batch, actor=request.user)
            self.log_change(request, batch, "Queued to load again.")
            retried += 1
        if retried:
            messages.success(request, f"{retried} batch(es) queued to load again.")
        if skipped:
            messages.warning(
                request,
                f"{skipped} batch(es) left as they are: only failed batches of datasets "
                "you may change are loaded again.",
            )


class ApiTokenForm(forms.ModelForm):
    """Issuing a token. `request` is set by ApiTokenAdmin.get_form: the datasets a token
    may be limited to are checked against the user it is issued for."""

    request = None

    class Meta:
        model = ApiToken
        fields = ("user", "name", "expires_at", "datasets")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            return cleaned  # nothing of an issued token is edited
        issuer = self.request.user
        user = (cleaned.get("user") if issuer.is_superuser else None) or issuer
        chosen = cleaned.get("datasets")
        try:
            services.check_token_terms(
                user=user,
                expires_at=cleaned.get("expires_at"),
                datasets=list(chosen) if chosen else None,
            )
        except ValidationError as error:
            self.add_error(None, error)
        return cleaned


class ApiTokenAdmin(admin.ModelAdmin):
    """Personal API tokens: issued here (shown once), revoked here, never deleted.

    A token expires after ATLAS_API_TOKEN_DAYS unless its issuer picks another time, and
    may be limited to some of the datasets its user may change (only those are offered).
    """

    form = ApiTokenForm
    list_display = (
        "prefix",
        "name",
        "user",
        "reach",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at", "all_datasets")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    actions = ["revoke_tokens"]
    filter_horizontal = ("datasets",)
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "reach",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )

    # Stewards manage their own tokens: ingestion is what a token is for, so the
    # 'change dataset' permission is enough, besides the model's own permissions.
    def _may(self, request, action: str) -> bool:
        user = request.user
        return user.has_perm(f"pipeline.{action}_apitoken") or user.has_perm(
            selectors.INGEST_PERMISSION
        )

    def has_module_permission(self, request):
        return self._may(request, "view")

    def has_view_permission(self, request, obj=None):
        return self._may(request, "view") and self._owns(request, obj)

    def has_add_permission(self, request):
        return self._may(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._may(request, "change") and self._owns(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay, as the record of who could send what

    @staticmethod
    def _owns(request, obj) -> bool:
        return obj is None or request.user.is_superuser or obj.user_id == request.user.pk

    def get_queryset(self, request):
        tokens = super().get_queryset(request).prefetch_related("datasets")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    @admin.display(description="Reaches")
    def reach(self, obj) -> str:
        if obj.all_datasets:
            return "every dataset its user may change"
        slugs = sorted(dataset.slug for dataset in obj.datasets.all())
        return ", ".join(slugs) if slugs else "no dataset (its datasets were deleted)"

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.readonly_fields
        fields = ("name", "expires_at", "datasets")
        return ("user", *fields) if request.user.is_superuser else fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "expires_at" and field is not None:
            days = settings.ATLAS_API_TOKEN_DAYS
            field.help_text = (
                f"Empty: {days} days from now." if days else "Empty: the token does not expire."
            )
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "datasets":
            # Only datasets the issuer may change can be chosen (superusers: any, checked
            # against the token's user when the form is sent).
            kwargs["queryset"] = selectors.datasets_for_user(user=request.user).prefetch_related(
                None
            )
            kwargs["help_text"] = (
                "Empty: every dataset the user may change, now and later. Otherwise the "
                "token reaches only the datasets chosen."
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing of a token is edited; revoking is an action
        user = form.cleaned_data.get("user") if request.user.is_superuser else None
        chosen = form.cleaned_data.get("datasets")
        token, plain = services.issue_api_token(
            user=user or request.user,
            name=form.cleaned_data["name"],
            actor=request.user,
            expires_at=form.cleaned_data.get("expires_at"),
            datasets=list(chosen) if chosen else None,
        )
        obj.__dict__.update(
            {field.attname: getattr(token, field.attname) for field in token._meta.concrete_fields}
        )
        obj._state.adding = False
        obj._plain_token = plain

    def save_related(self, request, form, formsets, change):
        pass  # issue_api_token stored the token's datasets; nothing is edited later

    def response_add(self, request, obj, post_url_continue=None):
        # The one time the token is shown: on this page, not in a message (messages
        # may be kept in a cookie) and not cached.
        response = TemplateResponse(
            request,
            "admin/explore/api_token_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "API token issued",
                "token": obj,
                "plain_token": obj._plain_token,
                "api_docs_url": _api_docs_url(),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            if not self._owns(request, token):
                continue
            services.revoke_api_token(token=token, actor=request.user)
            self.log_change(request, token, f"Revoked at {timezone.now():%Y-%m-%d %H:%M}.")
            revoked += 1
        messages.success(request, f"{revoked} token(s) revoked.")
