"""Writes of the explore layer: files land in object storage, then load into raw records.

The path of a file:
1. `store_upload` (or `store_records` for records posted to the API) checks the
   file and refuses, before writing anything, one that cannot be loaded: empty,
   over ATLAS_MAX_UPLOAD_BYTES, an unknown format, a CSV without header, a file
   this dataset already received (same SHA-256, of the bytes as received). Otherwise
   it stores the file encrypted (envelope encryption, governance.compliance.envelope)
   in the default storage (S3 or the filesystem), creates its LandingBatch with the
   key id that wraps the file's data key, audits it, and queues the load once the
   transaction commits.
2. The Celery task calls `load_batch`, which streams the stored file through
   decryption and a parser (explore.parsers) into raw records with COPY
   (explore.copy_writer). Files stored before encryption are read as they are.

A load is bounded: a file that decompresses past ATLAS_MAX_DECOMPRESSED_BYTES, holds
more than ATLAS_MAX_LINES_PER_BATCH lines or takes longer than ATLAS_MAX_LOAD_SECONDS
to read fails with a reason naming the cap, and keeps no raw record (a gzip bomb of a
few kilobytes cannot become millions of rows or keep a worker busy for long).

A load is idempotent and crash-safe. A session advisory lock makes one loader per
batch (a killed worker's connection closes and frees it); a conditional UPDATE
claims the batch (stored or interrupted -> loading) and must change exactly one
row; all raw records, the counts, the batch's raw id range and the 'loaded' status
commit in one transaction. A task delivered twice, or again after its worker died
mid-load, ends with each line exactly once.
"""

import contextlib
import gzip
import hashlib
import io
import logging
import secrets
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import PurePath
from typing import BinaryIO

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from atlas_site import advisory_locks, ownership
from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from atlas_site.schemas import sql_name
from explore import parsers
from explore.copy_writer import CopyResult, copy_records
from explore.models import BatchStatus, Compression, LandingBatch, RawRecord
from governance.compliance import envelope
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit, record_change
from governance.pipeline.models import ApiToken, Dataset, Run, RunKind, RunStatus, RunStep
from governance.pipeline.services import create_run, finish_run

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 1 << 20
PROGRESS_KEY = "explore:batch-progress:{}"
# Progress is written at most once a second while the file is read (bytes and lines,
# not only per COPY statement), and lives this long after its last write: a load whose
# worker was killed (nothing could clear it) stops showing rows it will never commit.
PROGRESS_INTERVAL = 1.0
PROGRESS_TTL = 120


def max_upload_bytes() -> int:
    return getattr(settings, "ATLAS_MAX_UPLOAD_BYTES", 2 * 1024**3)


def max_record_bytes() -> int:
    return getattr(settings, "ATLAS_MAX_RECORD_BYTES", 16 * 1024**2)


def max_decompressed_bytes() -> int:
    """Bytes a batch's file may hold once decompressed; 20x the upload limit by default."""
    return getattr(settings, "ATLAS_MAX_DECOMPRESSED_BYTES", None) or 20 * max_upload_bytes()


def max_lines_per_batch() -> int:
    return getattr(settings, "ATLAS_MAX_LINES_PER_BATCH", 50_000_000)


def max_load_seconds() -> float:
    return getattr(settings, "ATLAS_MAX_LOAD_SECONDS", 2400)


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
    batch.file.save(_storage_filename(filename), _EncryptedFile(sealed), save=False)
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
                queue_load(batch.pk, via=via)
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


class _EncryptedFile(File):
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


def _send_load(batch_id: int, via: str) -> None:
    from explore.tasks import load_batch as load_batch_task

    options = {}
    if getattr(settings, "ATLAS_INGEST_QUEUE", None):
        options["queue"] = settings.ATLAS_INGEST_QUEUE
    load_batch_task.apply_async((batch_id, via), **options)


class QueueError(Exception):
    """A load's task could not be sent (the broker is unreachable); its batch stays stored."""


def send_load(batch_id: int, *, via: str = "upload") -> None:
    """Send the batch's load task now; QueueError, with a one-line reason, when it cannot be.

    For callers that must report the failure (manage.py ingest), unlike queue_load.
    """
    try:
        _send_load(batch_id, via)
    except Exception as exc:
        cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise QueueError(
            f"batch {batch_id} is stored, but its load could not be queued: the broker "
            f"(Redis) cannot be reached ({cause}); the batch loads once it is sent again "
            "(the pipeline's tick resends it, or Load again on the batch list)"
        ) from exc


def queue_load(batch_id: int, *, via: str = "upload") -> None:
    """Queue the batch's load once the current transaction commits.

    robust: if the broker cannot be reached, the batch stays 'stored' (and can be
    queued again with retry_batch) instead of failing a request that stored it.
    """
    transaction.on_commit(partial(_send_load, batch_id, via), robust=True)


# --- Loading a stored file --------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """A raw stream over any object with read(n), counting bytes read (for progress)."""

    def __init__(self, source):
        self._source = source
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.bytes_read += size
        return size

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


def _open_stored_object(batch: LandingBatch, name: str | None = None):
    """The stored object's bytes (encrypted, or plain for a file stored before), streamed;
    `name`: another object of the batch's storage.

    django-storages' S3 file downloads the whole object into a SpooledTemporaryFile
    (in memory by default) before the first read; a GET's streaming body reads as
    it goes, so a file larger than RAM loads.
    """
    storage = batch.file.storage
    name = name or batch.file.name
    if hasattr(storage, "bucket") and hasattr(storage, "_normalize_name"):
        from storages.utils import clean_name

        key = storage._normalize_name(clean_name(name))
        return storage.bucket.Object(key).get()["Body"]
    return storage.open(name, "rb")


def open_batch_file(batch: LandingBatch) -> envelope.DecryptingReader:
    """The file as received, decrypted as it is read, in bounded memory.

    A batch that records a key id must have an encrypted object (a plain one there was
    put in its place); one stored before encryption (no key id) is read as it is.
    """
    return envelope.decrypting_reader(
        _open_stored_object(batch), require_encrypted=bool(batch.encryption_key_id)
    )


def _open_stored(batch: LandingBatch) -> _CountingReader:
    """The file as received for the loader, counting the bytes read (its progress)."""
    return _CountingReader(open_batch_file(batch))


class _BoundedReader(io.RawIOBase):
    """The decompressed content, read within the load's caps (bytes and seconds).

    Raises parsers.LimitExceededError past ATLAS_MAX_DECOMPRESSED_BYTES or once the load
    has read for ATLAS_MAX_LOAD_SECONDS (the clock starts at the first read, so waiting
    for the dataset's load lock does not count); calls `tick` after each read, which
    is how progress is reported while a COPY statement is still filling.
    """

    def __init__(self, source, *, max_bytes: int, max_seconds: float, tick=None):
        self._read = source.read
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._deadline: float | None = None
        self._tick = tick
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._max_seconds
        elif now > self._deadline:
            raise parsers.LimitExceededError(
                f"the load took longer than {self._max_seconds:g} s, the limit "
                f"(ATLAS_MAX_LOAD_SECONDS), after {self.bytes_read:,} bytes of content; "
                "nothing of it was kept: split the file or raise the limit"
            )
        # One byte more than the cap allows, to tell "exactly at the cap" from "past it".
        data = self._read(min(len(buffer), self._max_bytes - self.bytes_read + 1))
        size = len(data)
        self.bytes_read += size
        if self.bytes_read > self._max_bytes:
            raise parsers.LimitExceededError(
                f"the file decompresses to more than {self._max_bytes:,} bytes, the limit "
                "(ATLAS_MAX_DECOMPRESSED_BYTES); nothing of it was kept: split the file "
                "or raise the limit"
            )
        buffer[:size] = data
        if self._tick is not None:
            self._tick()
        return size


class _LoadProgress:
    """A load's progress in the cache: after each COPY statement, and at most once every
    PROGRESS_INTERVAL in between, as rows go to COPY and as the file is read (a file of
    blank lines, or a slow first statement, still shows its bytes and lines moving)."""

    def __init__(self, batch_id: int, *, stored: _CountingReader):
        self.batch_id = batch_id
        self.stored = stored
        self.content: _BoundedReader | None = None
        self.reader: parsers._Reader | None = None
        self.rows = 0
        self._last = time.monotonic()

    def copied(self, result: CopyResult, statement_done: bool = True) -> None:
        self.rows = result.rows_total
        self.write(force=statement_done)

    def write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        _set_progress(
            self.batch_id,
            rows=self.rows,
            bytes_read=self.stored.bytes_read,
            lines_read=self.reader.lines_read if self.reader is not None else 0,
            content_bytes=self.content.bytes_read if self.content is not None else 0,
        )


def _set_progress(batch_id: int, *, rows: int, bytes_read: int, **more: int) -> None:
    # Progress lives in the cache: the load's rows are invisible until it commits.
    try:
        cache.set(
            PROGRESS_KEY.format(batch_id),
            {"rows": rows, "bytes_read": bytes_read, **more, "at": time.time()},
            timeout=PROGRESS_TTL,
        )
    except Exception:  # a cache outage must not fail a load
        logger.warning("could not record the progress of batch %s", batch_id, exc_info=True)


def _clear_progress(batch_id: int) -> None:
    try:
        cache.delete(PROGRESS_KEY.format(batch_id))
    except Exception:
        logger.warning("could not clear the progress of batch %s", batch_id, exc_info=True)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, parsers.LimitExceededError):
        return str(exc)
    if isinstance(exc, envelope.EnvelopeError):
        return f"the stored file cannot be decrypted: {exc}"
    if isinstance(exc, (gzip.BadGzipFile, zlib.error, EOFError)):
        return f"the gzip data is corrupt or truncated: {exc}"
    if isinstance(exc, parsers.FormatError):
        return f"the file cannot be read: {exc}"
    if isinstance(exc, (FileNotFoundError, OSError)) or type(exc).__module__.startswith(
        ("botocore", "boto3")
    ):
        return f"could not read the stored file: {exc}"
    return f"{type(exc).__name__}: {exc}"


def load_batch(*, batch_id: int, triggered_by: str = "celery") -> Run | None:
    """Load a stored batch into raw records; return its run.

    Returns None, doing nothing, when another worker is loading the batch, or it is
    already loaded (a re-delivered task), failed (retry_batch queues it again) or gone.
    A load that fails marks the batch failed with the reason; the stored file stays.
    """
    # One loader per batch; a dead worker's closed connection releases it.
    with ownership.owned(advisory_locks.LOAD_BATCH, batch_id) as locked:  # with a heartbeat
        if not locked:
            logger.info("batch %s is being loaded by another worker", batch_id)
            return None
        claimed = LandingBatch.objects.filter(
            pk=batch_id, status__in=[BatchStatus.STORED, BatchStatus.LOADING]
        ).update(status=BatchStatus.LOADING, error="")
        if claimed != 1:
            logger.info("batch %s is not waiting to load; nothing to do", batch_id)
            return None
        batch = LandingBatch.objects.select_related("dataset").get(pk=batch_id)
        _fail_interrupted_loads(batch)
        run = create_run(
            dataset=batch.dataset,
            kind=RunKind.INGEST,
            triggered_by=triggered_by,
            actor=batch.uploaded_by,
        )
        run.status = RunStatus.RUNNING
        run.started_at = timezone.now()
        run.detail = {"batch_id": batch.pk, "file": batch.file.name, "sha256": batch.sha256}
        run.save(update_fields=["status", "started_at", "detail"])
        # This attempt starts from nothing: no rows of an earlier, killed one are shown.
        _set_progress(batch_id, rows=0, bytes_read=0)
        try:
            detail = _copy_batch(batch, run)
        except DATABASE_OUTAGE_ERRORS:  # Django's, or psycopg's from the COPY
            # The database went away: nothing can be recorded. The batch stays
            # 'loading'; the task's retry (or a re-delivery) claims it again.
            raise
        except Exception as exc:
            if isinstance(exc, parsers.LimitExceededError):
                logger.warning("loading batch %s stopped: %s", batch_id, exc)
            else:
                logger.exception("loading batch %s failed", batch_id)
            reason = _failure_reason(exc)
            LandingBatch.objects.filter(pk=batch_id).update(
                status=BatchStatus.FAILED, error=reason[:5000]
            )
            return finish_run(run, RunStatus.FAILED, actor=triggered_by, error=reason, kept=False)
        finally:
            # Whatever ended the load (a failure, a time limit, a lost database, a
            # shutdown), its rows were rolled back: stop showing them.
            _clear_progress(batch_id)
        run = finish_run(run, RunStatus.SUCCEEDED, actor=triggered_by, detail=detail)
        if batch.dataset.auto_promote and detail["rows_parsed"]:
            _request_promotion(batch)
        return run


def _request_promotion(batch: LandingBatch) -> None:
    """Dataset.auto_promote: a landed batch starts the promotion towards navigate."""
    from governance.pipeline.services import request_promotion

    try:
        request_promotion(dataset=batch.dataset, triggered_by="batch-landed")
    except Exception:  # the load stands; the schedule or a steward promotes later
        logger.exception("could not request the promotion of %s", batch.dataset.slug)


def _fail_interrupted_loads(batch: LandingBatch) -> None:
    """Runs of this batch left 'running' by a dead worker (we hold the lock: none is alive)."""
    Run.objects.filter(
        kind=RunKind.INGEST, status=RunStatus.RUNNING, detail__batch_id=batch.pk
    ).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: its worker stopped mid-load; nothing of it was kept, "
        "and the load started again",
    )


def _next_raw_id(cursor) -> int:
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [sql_name(RawRecord._meta.db_table)]
    )
    return cursor.fetchone()[0]


def _copy_batch(batch: LandingBatch, run: Run) -> dict:
    """Stream the stored file into raw records, all in one transaction."""
    started = time.monotonic()
    source = _open_stored(batch)
    with io.BufferedReader(source, buffer_size=READ_BYTES) as raw_stream:
        content = (
            gzip.GzipFile(fileobj=raw_stream, mode="rb")
            if batch.compression == Compression.GZIP
            else raw_stream
        )
        progress = _LoadProgress(batch.pk, stored=source)
        bounded = progress.content = _BoundedReader(
            content,
            max_bytes=max_decompressed_bytes(),
            max_seconds=max_load_seconds(),
            tick=progress.write,
        )
        reader = progress.reader = parsers.reader_for(
            batch.format,
            io.BufferedReader(bounded, buffer_size=READ_BYTES),
            max_record_bytes=max_record_bytes(),
            max_lines=max_lines_per_batch(),
        )

        with transaction.atomic(), connection.cursor() as cursor:
            # One load per dataset at a time, until commit: the rows of a dataset then
            # become visible in id order, which the promotion's watermark relies on
            # (a row can never appear below a watermark that already passed it).
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [advisory_locks.LOAD_DATASET, batch.dataset_id],
            )
            # One transaction holds every row, so a crash keeps none: rows commit only
            # with the batch's range and its 'loaded' status, nothing turns a loaded
            # batch back, and only a stored or loading one is claimed: it has no rows.
            step = RunStep.objects.create(run=run, name="copy into explore.raw_record")
            # Ids come from one sequence: every row this load copies gets one between
            # the two values taken around the COPY.
            first_raw_id = _next_raw_id(cursor) + 1
            result = copy_records(
                cursor,
                reader,
                batch_id=batch.pk,
                dataset_id=batch.dataset_id,
                received_at=batch.received_at,
                statement_rows=getattr(settings, "ATLAS_INGEST_STATEMENT_ROWS", 100_000),
                on_progress=progress.copied,
            )
            last_raw_id = _next_raw_id(cursor) - 1
            seconds = time.monotonic() - started
            now = timezone.now()
            loaded = LandingBatch.objects.filter(pk=batch.pk, status=BatchStatus.LOADING).update(
                status=BatchStatus.LOADED,
                first_raw_id=first_raw_id,
                last_raw_id=last_raw_id,
                rows_total=result.rows_total,
                rows_parsed=result.rows_parsed,
                rows_failed=result.rows_failed,
                loaded_at=now,
                error="",
            )
            if loaded != 1:
                raise RuntimeError("the batch left the 'loading' state during its load")
            detail = {
                "rows_parsed": result.rows_parsed,
                "rows_failed": result.rows_failed,
                "blank_lines": reader.blank_lines,
                "warnings": reader.warnings,
                "header": reader.header,
                "bytes": batch.size_bytes,
                "seconds": round(seconds, 3),
                "rows_per_second": round(result.rows_total / seconds) if seconds else None,
                "copy_statements": result.statements,
            }
            step.status = RunStatus.SUCCEEDED
            step.finished_at = now
            step.rows = result.rows_total
            step.detail = detail
            step.save()
            Run.objects.filter(pk=run.pk).update(
                rows_in=result.rows_total,
                rows_promoted=result.rows_parsed,
                rows_quarantined=result.rows_failed,
            )
    return detail


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
        queue_load(batch.pk, via="retry")
    return batch


# --- Key rotation of stored files ---------------------------------------------------------


class RewrapError(Exception):
    """A stored file whose data key was not re-wrapped; the message says why."""


def rewrap_batch_file(*, batch: LandingBatch, actor, keyring: Keyring | None = None) -> bool:
    """Wrap the data key of a batch's stored file by the current key; the body is copied
    as it is, never decrypted into storage. Returns False when there was nothing to do
    (already under the current key, or stored before encryption: plain).

    The re-wrapped object is written beside the old one, read back and decrypted whole
    (its sha256 must be the batch's), then the batch is switched to it and the old
    object deleted. Under the batch's load lock: a batch being loaded is left for later.
    Raises RewrapError (the batch unchanged, the new object removed).
    """
    keyring = keyring or Keyring.from_settings()
    if not batch.encryption_key_id or batch.encryption_key_id == keyring.current_id:
        return False
    with advisory_locks.try_session_lock(advisory_locks.LOAD_BATCH, batch.pk) as locked:
        if not locked:
            raise RewrapError(f"batch {batch.pk} is being loaded; run this again later")
        batch = LandingBatch.objects.get(pk=batch.pk)
        old_name, old_key_id = batch.file.name, batch.encryption_key_id
        storage = batch.file.storage
        try:
            with contextlib.closing(_open_stored_object(batch)) as stored:
                rewrapped = envelope.RewrappingReader(stored, keyring)
                if rewrapped.old_key_id != old_key_id:
                    raise RewrapError(
                        f"batch {batch.pk} records key {old_key_id!r}, its file names "
                        f"{rewrapped.old_key_id!r}"
                    )
                new_name = storage.save(
                    envelope.rewrapped_name(old_name), _EncryptedFile(rewrapped)
                )
        except (envelope.EnvelopeError, OSError) as error:
            raise RewrapError(f"batch {batch.pk}: {error}") from error
        try:
            digest = hashlib.sha256()
            with envelope.decrypting_reader(
                _open_stored_object(batch, new_name), keyring, require_encrypted=True
            ) as opened:
                while block := opened.read(READ_BYTES):
                    digest.update(block)
            if digest.hexdigest() != batch.sha256:
                raise RewrapError(
                    f"batch {batch.pk}: the re-wrapped file decrypts to sha256 "
                    f"{digest.hexdigest()} instead of {batch.sha256}"
                )
            with transaction.atomic():
                changed = LandingBatch.objects.filter(
                    pk=batch.pk, file=old_name, encryption_key_id=old_key_id
                ).update(file=new_name, encryption_key_id=rewrapped.key_id)
                if changed != 1:
                    raise RewrapError(f"batch {batch.pk} changed meanwhile; run this again")
                record_audit(
                    actor=actor,
                    action=AuditAction.UPDATE,
                    instance=batch,
                    before={"encryption_key_id": old_key_id, "file": old_name},
                    after={"encryption_key_id": rewrapped.key_id, "file": new_name},
                    detail=f"re-wrapped the stored file's data key from key {old_key_id!r} "
                    f"to {rewrapped.key_id!r} (body unchanged, decrypted and checked)",
                )
        except BaseException as error:
            storage.delete(new_name)
            if isinstance(error, (envelope.EnvelopeError, OSError)):
                raise RewrapError(f"batch {batch.pk}: {error}") from error
            raise
    try:
        storage.delete(old_name)
    except Exception:  # the batch names the new object; an old copy left behind is harmless
        logger.warning("could not delete %s after re-wrapping it", old_name, exc_info=True)
    return True


# --- API tokens ---------------------------------------------------------------------------

TOKEN_PREFIX = "atl_"  # noqa: S105 (marks Atlas tokens in logs and secret scanners; no secret)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_token_expiry(*, now: datetime | None = None) -> datetime | None:
    """When a token issued now stops working: ATLAS_API_TOKEN_DAYS (90) days on; never at 0."""
    days = getattr(settings, "ATLAS_API_TOKEN_DAYS", 90)
    if not days:
        return None
    return (now or timezone.now()) + timedelta(days=days)


def check_token_terms(
    *, user, expires_at: datetime | None, datasets: Iterable[Dataset] | None
) -> tuple[datetime | None, list[Dataset] | None]:
    """A new token's expiry and dataset limit, as issue_api_token takes them: the expiry
    (the default one for None), and the datasets sorted (None: every dataset the user may
    change). ValidationError, keyed by field, for an expiry in the past, an empty limit or
    a dataset the user may not change: a token never reaches further than its user."""
    from explore.selectors import can_ingest

    now = timezone.now()
    if expires_at is None:
        expires_at = default_token_expiry(now=now)
    elif expires_at <= now:
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    if datasets is None:
        return expires_at, None
    limited = sorted(set(datasets), key=lambda dataset: dataset.slug)
    if not limited:
        raise ValidationError({"datasets": "A limited token needs at least one dataset."})
    beyond = [dataset.slug for dataset in limited if not can_ingest(user=user, dataset=dataset)]
    if beyond:
        raise ValidationError(
            {
                "datasets": f"{user.get_username()} may not send data to {', '.join(beyond)}: "
                "a token cannot reach further than its user."
            }
        )
    return expires_at, limited


def issue_api_token(
    *,
    user,
    name: str,
    actor,
    expires_at: datetime | None = None,
    datasets: Iterable[Dataset] | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with its plain text, which is never stored.

    `expires_at` None: the default expiry (default_token_expiry). `datasets` None: the
    token reaches every dataset the user may change; otherwise only those, each of which
    the user must be able to change (ValidationError otherwise, nothing written).
    """
    expires_at, limited = check_token_terms(user=user, expires_at=expires_at, datasets=datasets)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            token_hash=hash_token(plain),
            prefix=plain[:8],
            expires_at=expires_at,
            all_datasets=limited is None,
        )
        if limited is not None:
            token.datasets.set(limited)
        record_audit(
            actor=actor,
            action=AuditAction.CREATE,
            instance=token,
            after={
                "user": user.get_username(),
                "name": name,
                "prefix": token.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "datasets": "all" if limited is None else [d.slug for d in limited],
            },
            detail=f"issued API token {token.prefix}… for {user.get_username()}",
        )
    return token, plain


def revoke_api_token(*, token: ApiToken, actor) -> ApiToken:
    """Stop a token from working (it is kept, for the record). Revoking twice is a no-op."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_audit(
            actor=actor,
            action=AuditAction.UPDATE,
            instance=token,
            after={"revoked_at": token.revoked_at.isoformat()},
            detail=f"revoked API token {token.prefix}…",
        )
    return token


def touch_api_token(*, token: ApiToken) -> None:
    """Note the token's use; at most once a minute, not a write per request."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
