"""Loading a stored file into raw records: streamed, bounded, counted, in one transaction."""

import gzip
import io
import logging
import time
import zlib

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from storages.utils import clean_name

from atlas_site import advisory_locks, ownership
from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from atlas_site.schemas import sql_table
from explore import parsers
from explore.copy_writer import CopyResult, copy_records
from explore.models import BatchStatus, Compression, LandingBatch, RawRecord
from explore.selectors import PROGRESS_KEY
from explore.services.receiving import READ_BYTES, max_upload_bytes
from governance.compliance import envelope
from governance.pipeline.models import Run, RunKind, RunStatus, RunStep
from governance.pipeline.services import create_run, finish_run

logger = logging.getLogger(__name__)

# Progress is written at most once a second while the file is read (bytes and lines,
# not only per COPY statement), and lives this long after its last write: a load whose
# worker was killed (nothing could clear it) stops showing rows it will never commit.
PROGRESS_INTERVAL = 1.0
PROGRESS_TTL = 120


def max_record_bytes() -> int:
    return getattr(settings, "ATLAS_MAX_RECORD_BYTES", 16 * 1024**2)


def max_decompressed_bytes() -> int:
    """Bytes a batch's file may hold once decompressed; 20x the upload limit by default."""
    return getattr(settings, "ATLAS_MAX_DECOMPRESSED_BYTES", None) or 20 * max_upload_bytes()


def max_lines_per_batch() -> int:
    return getattr(settings, "ATLAS_MAX_LINES_PER_BATCH", 50_000_000)


def max_load_seconds() -> float:
    return getattr(settings, "ATLAS_MAX_LOAD_SECONDS", 2400)


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


def stored_name(batch: LandingBatch) -> str:
    """The storage name of the batch's file (every batch is saved with one)."""
    if not batch.file.name:
        raise ValueError(f"batch {batch.pk} has no stored file")
    return batch.file.name


def open_stored_object(batch: LandingBatch, name: str | None = None):
    """The stored object's bytes (encrypted, or plain for a file stored before), streamed;
    `name`: another object of the batch's storage.

    django-storages' S3 file downloads the whole object into a SpooledTemporaryFile
    (in memory by default) before the first read; a GET's streaming body reads as
    it goes, so a file larger than RAM loads.
    """
    storage = batch.file.storage
    name = name or stored_name(batch)
    if hasattr(storage, "bucket") and hasattr(storage, "_normalize_name"):
        key = storage._normalize_name(clean_name(name))
        return storage.bucket.Object(key).get()["Body"]
    return storage.open(name, "rb")


def open_batch_file(batch: LandingBatch) -> envelope.DecryptingReader:
    """The file as received, decrypted as it is read, in bounded memory.

    A batch that records a key id must have an encrypted object (a plain one there was
    put in its place); one stored before encryption (no key id) is read as it is.
    """
    return envelope.decrypting_reader(
        open_stored_object(batch), require_encrypted=bool(batch.encryption_key_id)
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
        self.reader: parsers.Reader | None = None
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
        return finish_run(run, RunStatus.SUCCEEDED, actor=triggered_by, detail=detail)


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
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [sql_table(RawRecord)])
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
                lines_total=reader.lines_read,
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
