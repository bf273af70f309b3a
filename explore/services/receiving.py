"""Receiving a file: checked and refused before anything is written, stored encrypted,
its batch created and audited; a failed batch made waiting again (`retry_batch`).
"""

import hashlib
import io
import logging
import uuid
import zlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, BinaryIO, cast

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from explore import parsers, signals
from explore.models import BatchStatus, Compression, LandingBatch
from governance.compliance import envelope
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit, record_change
from governance.pipeline.models import Dataset

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 1 << 20


def max_upload_bytes() -> int:
    return getattr(settings, "ATLAS_MAX_UPLOAD_BYTES", 2 * 1024**3)


# --- Refusals --------------------------------------------------------------------------


class IngestError(Exception):
    """The input is refused and nothing was written; the message says why."""

    http_status = 400


class FileTooLargeError(IngestError):
    http_status = 413


class DuplicateFileError(IngestError):
    """This dataset already received the same bytes; `batch` holds them."""

    http_status = 409

    def __init__(self, batch: LandingBatch):
        self.batch = batch
        super().__init__(
            f"this file was already received as batch {batch.pk} "
            f"({batch.original_name or 'posted records'}, {batch.created_at:%Y-%m-%d %H:%M} UTC, "
            f"{batch.get_status_display().lower()}); it is not loaded twice"
        )


class BatchNotRetryableError(IngestError):
    http_status = 409


# --- Receiving a file -------------------------------------------------------------------


@dataclass
class Inspection:
    """What store_upload learnt about a file before storing it."""

    format: str
    compression: str
    size: int
    sha256: str


def _read_head(file: BinaryIO, compressed: bool) -> tuple[bytes, bool]:
    """The first bytes of the (decompressed) content, and whether that is all of it."""
    file.seek(0)
    if not compressed:
        head = file.read(parsers.HEAD_BYTES + 1)
        return head[: parsers.HEAD_BYTES], len(head) <= parsers.HEAD_BYTES
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    head = b""
    try:
        while len(head) < parsers.HEAD_BYTES and not inflater.eof:
            chunk = inflater.unconsumed_tail or file.read(64 * 1024)
            if not chunk:
                raise IngestError("the gzip data ends too early: the file is truncated")
            head += inflater.decompress(chunk, parsers.HEAD_BYTES + 1 - len(head))
    except zlib.error as exc:
        raise IngestError(f"this is not valid gzip data ({exc})") from None
    complete = inflater.eof and len(head) <= parsers.HEAD_BYTES and not inflater.unused_data
    return head[: parsers.HEAD_BYTES], complete


def _file_size(file) -> int:
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
    return size


def inspect_upload(*, dataset: Dataset, file, filename: str, format: str = "") -> Inspection:
    """Check a file before anything is written; raise IngestError with the reason."""
    size = _file_size(file)
    if size == 0:
        raise IngestError("the file is empty")
    limit = max_upload_bytes()
    if size > limit:
        raise FileTooLargeError(
            f"the file is {size:,} bytes; the limit (ATLAS_MAX_UPLOAD_BYTES) is {limit:,} bytes"
        )
    file.seek(0)
    compressed = file.read(2) == GZIP_MAGIC
    head, complete = _read_head(file, compressed)
    fmt = format or parsers.format_from_name(filename) or parsers.sniff_format(head)
    if fmt not in parsers.FORMATS:
        raise IngestError(
            f"cannot tell the format of {filename!r}: name it .csv, .jsonl or .json "
            "(optionally .gz), or say which format it is"
            if not format
            else f"unknown format {format!r}; use one of {', '.join(parsers.FORMATS)}"
        )
    contract_fields = list(dataset.fields.values_list("name", flat=True))
    try:
        parsers.check_head(head, fmt, complete=complete, contract_fields=contract_fields)
    except parsers.FormatError as exc:
        raise IngestError(str(exc)) from None
    digest = hashlib.sha256()
    file.seek(0)
    while chunk := file.read(READ_BYTES):
        digest.update(chunk)
    return Inspection(
        format=fmt,
        compression=Compression.GZIP if compressed else Compression.NONE,
        size=size,
        sha256=digest.hexdigest(),
    )


def _storage_filename(filename: str) -> str:
    name = get_valid_filename(PurePath(filename.replace("\\", "/")).name or "upload")
    return name[-120:] or "upload"


def _actor_user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def store_upload(
    *,
    dataset: Dataset,
    file,
    filename: str,
    actor,
    format: str = "",
    via: str = "upload",
    queue: bool = True,
) -> LandingBatch:
    """Store a file as received (encrypted at rest), create its batch and queue its load.

    `file` is any readable, seekable binary file (an UploadedFile, an open file).
    `actor` is a user or a string naming a component; `via` says where the file
    came from ("admin", "api", "cli") for the run that loads it; `queue=False`
    leaves the load to the caller (load_batch).
    Raises IngestError (DuplicateFileError, FileTooLargeError) before writing anything.
    """
    if not dataset.is_active:
        raise IngestError(f"dataset {dataset.slug} is inactive; it takes no new files")
    info = inspect_upload(dataset=dataset, file=file, filename=filename, format=format)
    existing = LandingBatch.objects.filter(dataset=dataset, sha256=info.sha256).first()
    if existing is not None:
        raise DuplicateFileError(existing)
    now = timezone.now()
    batch = LandingBatch(
        key=uuid.uuid4(),
        dataset=dataset,
        original_name=filename[:255],
        sha256=info.sha256,
        format=info.format,
        compression=info.compression,
        size_bytes=info.size,
        received_at=now,
        uploaded_by=_actor_user(actor),
        status=BatchStatus.STORED,
    )
    file.seek(0)
    # Stored encrypted, streamed (one chunk in memory); sha256 and size_bytes describe
    # the file as received, which is what duplicates are recognised by.
    sealed = envelope.encrypting_reader(file, Keyring.from_settings())
    batch.encryption_key_id = sealed.key_id
    # The object first: a batch row never points at a file that is not there.
    batch.file.save(_storage_filename(filename), EncryptedFile(cast(IO[bytes], sealed)), save=False)
    try:
        with transaction.atomic():
            batch.save()
            record_change(
                actor=actor,
                instance=batch,
                before=None,
                detail=f"received {filename} via {via}: {info.size:,} bytes, sha256 {info.sha256}",
            )
            if queue:
                signals.batch_waiting.send(sender=LandingBatch, batch=batch, via=via)
    except IntegrityError:
        # The same file arrived at the same moment through another request.
        batch.file.delete(save=False)
        existing = LandingBatch.objects.filter(dataset=dataset, sha256=info.sha256).first()
        if existing is None:
            raise
        raise DuplicateFileError(existing) from None
    except BaseException:
        batch.file.delete(save=False)
        raise
    return batch


class EncryptedFile(File):
    """An encrypted stream for Storage.save; S3 labels it as the bytes it is."""

    content_type = "application/octet-stream"


def store_records(*, dataset: Dataset, body: bytes, actor, via: str = "api") -> LandingBatch:
    """Records posted as a JSON array: stored as received (a .json file), then loaded."""
    return store_upload(
        dataset=dataset,
        file=io.BytesIO(body),
        filename="records.json",
        actor=actor,
        format=parsers.JSON,
        via=via,
    )


def retry_batch(*, batch: LandingBatch, actor) -> LandingBatch:
    """Queue a failed batch (or one whose load was never queued) for loading again.

    Its stored file is loaded from the start; nothing of the failed attempt was kept.
    """
    with transaction.atomic():
        changed = LandingBatch.objects.filter(
            pk=batch.pk, status__in=[BatchStatus.FAILED, BatchStatus.STORED]
        ).update(status=BatchStatus.STORED, error="")
        batch.refresh_from_db()
        if changed != 1:
            raise BatchNotRetryableError(
                f"batch {batch.pk} is {batch.get_status_display().lower()}; "
                "only a failed or waiting batch can be loaded again"
            )
        record_audit(
            actor=actor,
            action=AuditAction.ACTION,
            instance=batch,
            after={"status": batch.status},
            detail="load retried",
        )
        signals.batch_waiting.send(sender=LandingBatch, batch=batch, via="retry")
    return batch
