"""The ingestion API, mounted at /api/: OpenAPI at /api/openapi.json, docs at /api/docs.

Built with django-ninja: typed request and response schemas (pydantic) that are
validated and documented from the same code, an OpenAPI description and Swagger UI
built in, and no framework beyond Django itself.

Authentication: `Authorization: Bearer <token>`, a personal API token issued in the
admin (only its SHA-256 digest is stored). A token acts as its user and reaches the
datasets that user may ingest into: with the 'change dataset' permission (stewards)
every dataset, otherwise those the user owns (explore.selectors.can_ingest).
Errors are JSON: {"detail": "..."}; 401 without a usable token, 403 for a dataset
the token's user may not change, 429 (with Retry-After) for an address that sent too
many refused tokens (AXES_FAILURE_LIMIT) until its cool-off (AXES_COOLOFF_MINUTES) ends.
Refused tokens are counted and audited like failed admin logins (atlas_site.security).
"""

from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Body, File, Form, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from atlas_site import security
from explore import selectors, services
from explore.models import LandingBatch
from governance.pipeline.models import Dataset


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra


class LockedOutError(Exception):
    """The client's address is in its cool-off after too many refused tokens."""


def _refusal(api_token) -> str | None:
    """Why a presented token is not accepted; None when it is."""
    if api_token is None:
        return "unknown API token"
    if api_token.revoked_at is not None:
        return "this API token was revoked"
    if api_token.expires_at is not None and api_token.expires_at <= timezone.now():
        return "this API token has expired"
    if not api_token.user.is_active:
        return "this API token's user is inactive"
    return None


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest):
        if not request.headers.get("Authorization"):
            raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str):
        # Throttled like the admin's login form (atlas_site.security): an address with too
        # many refused tokens waits out its cool-off before any token is looked at.
        if security.api_client_locked_out(request):
            raise LockedOutError
        token = token.strip()
        api_token = selectors.find_api_token(token=token)
        refusal = _refusal(api_token)
        if refusal is not None:
            security.report_failed_api_token(request, presented=token, reason=refusal)
            raise ApiError(401, refusal)
        services.touch_api_token(token=api_token)
        request.user = api_token.user  # so that the audit log names who did it
        return api_token


api = NinjaAPI(
    title="Atlas ingestion API",
    version="1",
    description=__doc__,
    auth=TokenAuth(),
    urls_namespace="api",
)


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return api.create_response(request, {"detail": exc.detail, **exc.extra}, status=exc.status)


@api.exception_handler(LockedOutError)
def _locked_out(request, exc: LockedOutError):
    return security.lockout_response(request)


@api.exception_handler(services.IngestError)
def _refused(request, exc: services.IngestError):
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, services.DuplicateFileError):
        body["batch_id"] = exc.batch.pk
    return api.create_response(request, body, status=exc.http_status)


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return api.create_response(
        request,
        {"detail": "the request body is too large to post as records; upload it as a file"},
        status=413,
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return api.create_response(
        request,
        {"detail": "authentication required: send 'Authorization: Bearer <token>'"},
        status=401,
    )


# --- Schemas ------------------------------------------------------------------------------


class Error(Schema):
    detail: str


class DuplicateError(Schema):
    detail: str
    batch_id: int


class FieldOut(Schema):
    name: str
    type: str
    required: bool
    description: str


class DatasetOut(Schema):
    slug: str
    name: str
    description: str
    is_active: bool
    business_key: list[str]
    fields: list[FieldOut]


class ProgressOut(Schema):
    rows: int
    bytes_read: int
    fraction: float | None = None


class RunOut(Schema):
    id: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    warnings: list[str]
    blank_lines: int
    error: str


class BatchOut(Schema):
    id: int
    dataset: str
    status: str
    status_label: str
    done: bool
    original_name: str
    format: str
    compression: str
    size_bytes: int
    sha256: str
    stored_as: str
    received_at: datetime
    loaded_at: datetime | None
    rows_total: int
    rows_parsed: int
    rows_failed: int
    error: str
    progress: ProgressOut | None
    run: RunOut | None


# --- Endpoints ------------------------------------------------------------------------------


def _dataset_for(request, slug: str) -> Dataset:
    dataset = get_object_or_404(Dataset, slug=slug)
    if not selectors.can_ingest(user=request.auth.user, dataset=dataset):
        raise ApiError(403, f"your token may not send data to dataset {slug!r}")
    return dataset


def _actor(request):
    # The audit log's origin (address, agent) comes from its middleware; the actor is
    # the token's user.
    return request.auth.user


@api.get("/datasets", response=list[DatasetOut], summary="Datasets your token may send data to")
def list_datasets(request):
    return [
        {
            "slug": dataset.slug,
            "name": dataset.name,
            "description": dataset.description,
            "is_active": dataset.is_active,
            "business_key": dataset.business_key,
            "fields": [
                {
                    "name": field.name,
                    "type": field.data_type,
                    "required": field.required,
                    "description": field.description,
                }
                for field in dataset.fields.all()
            ],
        }
        for dataset in selectors.datasets_for_user(user=request.auth.user)
    ]


@api.post(
    "/datasets/{slug}/files",
    response={202: BatchOut, 400: Error, 403: Error, 404: Error, 409: DuplicateError, 413: Error},
    summary="Upload a file (CSV, JSON Lines or JSON array; gzip too)",
)
def upload_file(
    request,
    slug: str,
    file: File[UploadedFile],
    format: Form[str] = "",
):
    """Stores the file as received and queues its load; poll the batch for the outcome.

    The format comes from `format` (csv, jsonl, json), else the file name's
    extension, else the content. The same file sent twice is refused with 409 and
    the id of the batch that holds it.
    """
    dataset = _dataset_for(request, slug)
    batch = services.store_upload(
        dataset=dataset,
        file=file,
        filename=file.name or "upload",
        actor=_actor(request),
        format=format,
        via="api",
    )
    return Status(202, selectors.batch_status(batch=batch))


@api.post(
    "/datasets/{slug}/records",
    response={202: BatchOut, 400: Error, 403: Error, 404: Error, 409: DuplicateError, 413: Error},
    summary="Post records as a JSON array of objects",
)
def post_records(request, slug: str, records: list[dict[str, Any]] = Body(...)):  # noqa: B008
    """Stored as received (a .json file) and loaded like an upload.

    For more than a few megabytes, upload a file instead.
    """
    dataset = _dataset_for(request, slug)
    if not records:
        raise ApiError(400, "the array is empty: there are no records")
    batch = services.store_records(dataset=dataset, body=request.body, actor=_actor(request))
    return Status(202, selectors.batch_status(batch=batch))


@api.get(
    "/batches/{batch_id}",
    response={200: BatchOut, 403: Error, 404: Error},
    summary="A batch's status, counts and outcome",
)
def batch_status(request, batch_id: int):
    batch = get_object_or_404(LandingBatch.objects.select_related("dataset"), pk=batch_id)
    if not selectors.can_ingest(user=request.auth.user, dataset=batch.dataset):
        raise ApiError(403, f"your token may not read batches of dataset {batch.dataset.slug!r}")
    return selectors.batch_status(batch=batch)
