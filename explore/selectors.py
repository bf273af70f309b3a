"""Reads of the explore layer: who may ingest where, and how a batch is doing."""

import hashlib
from typing import Any

from django.core.cache import cache
from django.db.models import Q, QuerySet

from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import ApiToken, Dataset, Run, RunKind
from governance.pipeline.selectors import readable_dataset_ids

INGEST_PERMISSION = "pipeline.change_dataset"
# A load's progress in the cache (written by explore.services while it reads the file).
PROGRESS_KEY = "explore:batch-progress:{}"


def hash_token(token: str) -> str:
    """An API token's digest: what is stored and looked up, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def can_ingest(*, user, dataset: Dataset) -> bool:
    """Who may send files to a dataset (admin upload, API, tokens alike).

    A user who may change datasets (the steward role), or the dataset's owner: an
    owner feeds their own dataset without being given every other one.
    """
    if user is None or not user.is_active:
        return False
    return user.has_perm(INGEST_PERMISSION) or (
        dataset.owner_id is not None and dataset.owner_id == user.pk
    )


def datasets_for_user(*, user) -> QuerySet[Dataset]:
    """The datasets `user` may ingest into (see can_ingest), with their contract fields."""
    datasets = Dataset.objects.prefetch_related("fields").order_by("slug")
    if not user.is_active:
        return datasets.none()
    if user.has_perm(INGEST_PERMISSION):
        return datasets
    return datasets.filter(owner=user)


def find_api_token(*, token: str) -> ApiToken | None:
    """The token whose digest matches, usable or not (the caller says why not)."""
    if not token:
        return None
    return ApiToken.objects.select_related("user").filter(token_hash=hash_token(token)).first()


def batch_progress(*, batch: LandingBatch) -> dict[str, Any] | None:
    """How far a load in progress has got: rows handed to COPY, lines and decompressed
    bytes read, and stored bytes read (the fraction of the file). Written at most once a
    second while the file is read (explore.services.loading._LoadProgress)."""
    if batch.status != BatchStatus.LOADING:
        return None
    try:
        progress = cache.get(PROGRESS_KEY.format(batch.pk))
    except Exception:
        return None
    if not progress:
        return {"rows": 0, "bytes_read": 0, "lines_read": 0, "content_bytes": 0, "fraction": 0.0}
    fraction = progress["bytes_read"] / batch.size_bytes if batch.size_bytes else None
    return {**progress, "fraction": min(fraction, 1.0) if fraction is not None else None}


def last_load_run(*, batch: LandingBatch) -> Run | None:
    return (
        Run.objects.filter(kind=RunKind.INGEST, detail__batch_id=batch.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def batch_status(*, batch: LandingBatch) -> dict[str, Any]:
    """Everything a person or a client wants to know about a batch, JSON-ready."""
    run = last_load_run(batch=batch)
    return {
        "id": batch.pk,
        "dataset": batch.dataset.slug,
        "status": batch.status,
        "status_label": batch.get_status_display(),
        "done": batch.status in (BatchStatus.LOADED, BatchStatus.FAILED),
        "original_name": batch.original_name,
        "format": batch.format,
        "compression": batch.compression,
        "size_bytes": batch.size_bytes,
        "sha256": batch.sha256,
        "stored_as": batch.file.name,
        "received_at": batch.received_at.isoformat(),
        "loaded_at": batch.loaded_at.isoformat() if batch.loaded_at else None,
        "rows_total": batch.rows_total,
        "lines_total": batch.lines_total,
        "rows_parsed": batch.rows_parsed,
        "rows_failed": batch.rows_failed,
        "error": batch.error,
        "progress": batch_progress(batch=batch),
        "run": None
        if run is None
        else {
            "id": run.pk,
            "status": run.status,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "seconds": run.duration.total_seconds() if run.duration else None,
            "warnings": run.detail.get("warnings", []),
            "blank_lines": run.detail.get("blank_lines", 0),
            "error": run.error,
        },
    }


def follow_promotion(status: dict[str, Any], promotion: dict[str, Any] | None) -> dict[str, Any]:
    """A batch's status followed on through its promotion (chart.selectors.batch_promotion,
    read by the layer above): done only once the promotion settled too."""
    if promotion is not None:
        status["promotion"] = promotion
        status["done"] = status["done"] and promotion["settled"]
    return status


def readable_batches(*, user, batches: QuerySet[LandingBatch]) -> QuerySet[LandingBatch]:
    """The batches among `batches` that `user` may see: of a dataset limited to groups,
    only its readers see its batches (Dataset.reader_groups), and whoever sent a batch
    sees that one, to follow what became of it."""
    readable = readable_dataset_ids(user)
    if readable is None:
        return batches
    return batches.filter(Q(dataset_id__in=readable) | Q(uploaded_by_id=user.pk))


def may_read_records(*, user, dataset: Dataset) -> bool:
    """Whether `user` may read the dataset's records (not limited, or one of its readers)."""
    readable = readable_dataset_ids(user)
    return readable is None or dataset.pk in readable


def recent_batches(*, dataset: Dataset, user, limit: int = 10) -> QuerySet[LandingBatch]:
    batches = readable_batches(user=user, batches=LandingBatch.objects.filter(dataset=dataset))
    return batches.order_by("-created_at", "-pk")[:limit]


def raw_records_of(
    batch: LandingBatch, records: QuerySet[RawRecord] | None = None
) -> QuerySet[RawRecord]:
    """A batch's raw records (among `records`), read through raw_record's primary key.

    Every row of a batch carries its received_at (one monthly partition) and an id in
    the batch's range. A batch without a range has no rows, except those written
    without the loader (test fixtures): for those the partition is scanned.
    """
    records = RawRecord.objects.all() if records is None else records
    records = records.filter(batch_id=batch.pk, received_at=batch.received_at)
    if batch.first_raw_id is not None and batch.last_raw_id is not None:
        records = records.filter(id__gte=batch.first_raw_id, id__lte=batch.last_raw_id)
    return records


def failed_lines(*, batch: LandingBatch, limit: int = 20):
    """The first lines of a batch that could not be read, with their errors."""
    return (
        raw_records_of(batch)
        .filter(payload__isnull=True)
        .order_by("id")  # line order: a batch's lines are copied in order
        .values("line_number", "raw_text", "parse_error")[:limit]
    )


def failed_batches(*, dataset: Dataset, limit: int = 10) -> list[LandingBatch]:
    """Landing batches of the dataset whose load failed, latest first."""
    return list(
        LandingBatch.objects.filter(dataset=dataset, status=BatchStatus.FAILED).order_by(
            "-created_at"
        )[:limit]
    )
