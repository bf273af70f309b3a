"""The ingestion API, mounted at /api/: OpenAPI at /api/openapi.json, docs at /api/docs.

Built with django-ninja: typed request and response schemas (pydantic) that are
validated and documented from the same code, an OpenAPI description and Swagger UI
built in, and no framework beyond Django itself.

Authentication: `Authorization: Bearer <token>`, a personal API token issued in the
admin (only its SHA-256 digest is stored). A token acts as its user and reaches the
datasets that user may ingest into: with the 'change dataset' permission (stewards)
every dataset, otherwise those the user owns (explore.selectors.can_ingest); a token
limited to some datasets reaches only those of them. Tokens expire
(ATLAS_API_TOKEN_DAYS after they are issued, 90 by default) unless issued otherwise.
Errors are JSON: {"detail": "..."}; 401 without a usable token, 404 for a dataset or
batch that does not exist or that the token may not use (the same answer for both, so
that a token cannot find out which datasets exist), 429 (with Retry-After) for an
address that sent too many refused tokens (AXES_FAILURE_LIMIT) until its cool-off
(AXES_COOLOFF_MINUTES) ends. Refused tokens are counted and audited like failed admin
logins (atlas_site.security). Every answer carries `Cache-Control: no-store`.
"""

from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Body, File, Form, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from atlas_site import security
from chart import selectors as chart_selectors
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


class AtlasNinjaAPI(NinjaAPI):
    """Every answer (results, errors, the 401 and 422 ninja makes itself) is `no-store`:
    batch statuses and dataset lists are the token's user's business, not a cache's."""

    def create_response(self, request, data, *, status=None, temporal_response=None):
        response = super().create_response(
            request, data, status=status, temporal_response=temporal_response
        )
        return _no_store(response)

    def create_temporal_response(self, request) -> HttpResponse:
        return _no_store(super().create_temporal_response(request))


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


api = AtlasNinjaAPI(
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
    return _no_store(security.lockout_response(request))


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


class PromotionOut(Schema):
    """How far the batch's records went: waiting, promoting (fraction), or promoted."""

    state: str
    settled: bool
    automatic: bool | None = None
    fraction: float | None = None
    promoted: int | None = None
    quarantined: int | None = None
    mostly_quarantined: bool | None = None
    run_id: int | None = None


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
    lines_total: int = 0
    rows_parsed: int
    rows_failed: int
    error: str
    progress: ProgressOut | None
    run: RunOut | None
    promotion: PromotionOut | None = None


# --- Endpoints ------------------------------------------------------------------------------


def _token_may_use(request, dataset: Dataset) -> bool:
    api_token = request.auth
    return selectors.can_ingest(user=api_token.user, dataset=dataset) and api_token.reaches(dataset)


def _dataset_for(request, slug: str) -> Dataset:
    # A dataset the token may not use gets the very answer of one that does not exist:
    # a 403 would tell any token holder which slugs exist.
    dataset = Dataset.objects.filter(slug=slug).first()
    if dataset is None or not _token_may_use(request, dataset):
        raise ApiError(404, f"there is no dataset {slug!r} for your token")
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
        for dataset in _datasets_of(request.auth)
    ]


def _datasets_of(api_token):
    datasets = selectors.datasets_for_user(user=api_token.user)
    if not api_token.all_datasets:
        datasets = datasets.filter(pk__in=api_token.datasets.values("pk"))
    return datasets


@api.post(
    "/datasets/{slug}/files",
    response={202: BatchOut, 400: Error, 404: Error, 409: DuplicateError, 413: Error},
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
    response={202: BatchOut, 400: Error, 404: Error, 409: DuplicateError, 413: Error},
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
    response={200: BatchOut, 404: Error},
    summary="A batch's status, counts and outcome",
)
def batch_status(request, batch_id: int):
    # As with datasets: another dataset's batch is answered like a batch that does not exist.
    # A batch of a dataset limited to groups is its readers' (and its sender's) only.
    batches = selectors.readable_batches(user=request.auth.user, batches=LandingBatch.objects)
    batch = batches.select_related("dataset").filter(pk=batch_id).first()
    if batch is None or not _token_may_use(request, batch.dataset):
        raise ApiError(404, f"there is no batch {batch_id} for your token")
    # A client polling until done waits for the promotion too.
    status = selectors.batch_status(batch=batch)
    return selectors.follow_promotion(status, chart_selectors.batch_promotion(batch=batch))
