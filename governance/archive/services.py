"""Writes of the archive area: partition upkeep, retention (archive or drop), restore.

Every piece of partition DDL Atlas runs after its migrations is here or in
`atlas_site.partitions`: creating partitions ahead, moving rows out of DEFAULT,
detaching and dropping an archived partition, recreating one on restore. That is the
maintenance path; with separate database roles it runs on a worker connected as the
owner role (ATLAS_MAINTENANCE_QUEUE), the only role that may detach or drop a
partition of the audit log, whose triggers keep refusing UPDATE, DELETE and TRUNCATE
to everyone (a DROP of a whole partition fires no row or TRUNCATE trigger).

An archive of one partition is one transaction: the partition is locked against
writes (SHARE), its rows are exported with COPY through gzip and envelope encryption
(governance.compliance.envelope) to an object in storage, the object is read back and
checked (sha256 and size of the stored bytes, then decrypted: header and row count),
the manifest is written and the partition detached and dropped, and the audit entry
appended. Any failure, or a worker killed at any point, rolls all of it back: the rows
stay where they were, and only an unreferenced object may be left in storage, which
the next attempt removes.

The manifest's sha256 and byte_size describe the object as stored (encrypted), so an
operator can check an object without the key and a damaged one is caught before it
is decrypted; decryption then authenticates every chunk. Objects archived before
encryption (plain gzip, no key id in their manifest) are restored as they are.
"""

import csv
import gzip
import hashlib
import io
import logging
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone
from psycopg.types.json import Jsonb

from atlas_site import advisory_locks
from atlas_site.partitions import (
    AUDIT_LOG,
    MONTH,
    PARTITIONED_TABLES,
    QUARTER,
    YEAR,
    PartitionedTable,
    PartitionReport,
    by_db_table,
    create_partition,
    ensure_table_partitions,
    move_default_rows,
    rows_in_default_for_range,
    sealing_disabled,
    table_columns,
)
from governance.archive import selectors
from governance.archive.models import ArchivedPartition, RetentionAction, RetentionPolicy
from governance.compliance import audit_chain, envelope
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import Run, RunKind, RunStatus
from governance.pipeline.services import ENDED, create_run, finish_run, run_lock, skip_run

logger = logging.getLogger(__name__)

SCHEDULE_ACTOR = "retention schedule"
UPKEEP_ACTOR = "partition upkeep"
ARCHIVE_PREFIX = "archive"
# The retention run's advisory lock: one at a time.
RETENTION_LOCK = (advisory_locks.RETENTION, 0)
READ_CHUNK = 1024 * 1024
# gzip's own default (6): level 9 took twice as long for the same size (bench/archive.py).
COMPRESS_LEVEL = 6
# A raw line may be up to ATLAS_MAX_RECORD_BYTES; csv's default field limit is 128 KiB.
csv.field_size_limit(2**31 - 1)


class ArchiveError(Exception):
    """An archive, a verification or a restore that cannot go on; the message says why."""


def maintenance_task_options() -> dict:
    """Options of partition-DDL tasks: the ATLAS_MAINTENANCE_QUEUE setting, when set."""
    queue = settings.ATLAS_MAINTENANCE_QUEUE
    return {"queue": queue} if queue else {}


def _lock_table(cursor, table: PartitionedTable) -> None:
    """Serialise partition DDL on one table (this transaction); bound lock waits."""
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)",
        [advisory_locks.PARTITION_DDL, PARTITIONED_TABLES.index(table)],
    )
    cursor.execute(
        "SELECT set_config('lock_timeout', %s, true)", [settings.ATLAS_ARCHIVE_LOCK_TIMEOUT]
    )
    # Foreign keys are checked at commit by default; PostgreSQL refuses to drop a table
    # with such checks pending (rows written earlier in an enclosing transaction).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


# --- Partition upkeep ----------------------------------------------------------------

_AHEAD_SETTING = {MONTH: "months", YEAR: "years", QUARTER: "quarters"}


def ensure_partitions(
    *,
    months: int | None = None,
    years: int | None = None,
    quarters: int | None = None,
    today: date | None = None,
) -> list[PartitionReport]:
    """Move rows out of DEFAULT partitions, then create partitions ahead of today.

    Defaults come from ATLAS_PARTITIONS_AHEAD (3 months, 2 years, 2 quarters). Rows in
    a DEFAULT partition get partitions of their own periods (see
    `atlas_site.partitions.move_default_rows`). A range whose rows are archived is not
    made again ahead of need. Each report names the partitions made, the rows moved
    out of DEFAULT and how many rows are left there.
    """
    overrides = {"months": months, "years": years, "quarters": quarters}
    ahead = {
        **settings.ATLAS_PARTITIONS_AHEAD,
        **{k: v for k, v in overrides.items() if v is not None},
    }
    today = today or timezone.now().date()
    reports = []
    for table in PARTITIONED_TABLES:
        archived = {
            table.partition_name(start.astimezone(UTC).date())
            for start in ArchivedPartition.objects.filter(
                table_name=f"{table.schema}.{table.name}", restored_at__isnull=True
            ).values_list("range_start", flat=True)
        }
        # One transaction per table: a failure on one leaves the others' partitions made.
        with transaction.atomic(), connection.cursor() as cursor:
            _lock_table(cursor, table)
            moved = move_default_rows(table, cursor)
            report = ensure_table_partitions(
                table,
                cursor,
                ahead=ahead[_AHEAD_SETTING[table.interval]],
                today=today,
                skip=archived,
            )
            report.moved = moved
            report.created = sorted(set(report.created) | set(moved))
            if moved:
                record_audit(
                    actor=UPKEEP_ACTOR,
                    action=AuditAction.ACTION,
                    object_type="partition",
                    object_id=report.table,
                    object_repr=f"{report.table} DEFAULT partition",
                    after={"moved": moved},
                    detail=f"moved {sum(moved.values())} rows out of the DEFAULT partition of "
                    f"{report.table} into " + ", ".join(f"{n} ({c})" for n, c in moved.items()),
                )
        reports.append(report)
    return reports


# --- Object storage --------------------------------------------------------------------


def object_key(partition: selectors.Partition, run_id: int) -> str:
    """archive/<schema>/<table>/<partition>__<start>_<end>__run<id>.csv.gz"""
    return f"{_object_prefix(partition)}run{run_id}.csv.gz"


def _object_prefix(partition: selectors.Partition) -> str:
    table = partition.table
    return (
        f"{ARCHIVE_PREFIX}/{table.schema}/{table.name}/"
        f"{partition.name}__{partition.start}_{partition.end}__"
    )


def _open_object(key: str):
    """Stream a stored object without holding it whole in memory or on disk.

    django-storages' S3 file downloads the whole object before the first read; a
    GET's streaming body reads as it goes.
    """
    storage = default_storage
    if hasattr(storage, "bucket") and hasattr(storage, "_normalize_name"):
        from storages.utils import clean_name

        return storage.bucket.Object(storage._normalize_name(clean_name(key))).get()["Body"]
    return storage.open(key, "rb")


class _HashingReader(io.RawIOBase):
    """Reads a stream, hashing and counting the bytes that pass."""

    def __init__(self, source):
        self._source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        self.digest.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


class _HashingWriter(io.RawIOBase):
    def __init__(self, target):
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _drain(stream) -> None:
    while stream.read(READ_CHUNK):
        pass


def _remove_leftovers(partition: selectors.Partition) -> list[str]:
    """Delete objects an interrupted attempt left for this range that no manifest names."""
    prefix = _object_prefix(partition)
    folder, start = prefix.rsplit("/", 1)
    try:
        _dirs, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    known = set(
        ArchivedPartition.objects.filter(object_key__startswith=prefix).values_list(
            "object_key", flat=True
        )
    )
    removed = []
    for name in files:
        key = f"{folder}/{name}"
        if name.startswith(start) and key not in known:
            default_storage.delete(key)
            removed.append(key)
    return removed


@dataclass
class Export:
    key: str
    rows: int
    byte_size: int
    sha256: str
    columns: list[str]
    key_id: str


def _export(cursor, partition: selectors.Partition, key: str) -> Export:
    """COPY the partition's rows as CSV (with a header) through gzip and encryption into
    storage; sha256 and byte size are those of the stored (encrypted) bytes.

    Memory stays bounded: COPY streams blocks into a temporary file, which storage
    then reads in chunks.
    """
    columns = table_columns(partition.table, cursor)
    column_sql = ", ".join(f'"{name}"' for name in columns)
    with tempfile.TemporaryFile() as spool:
        hashing = _HashingWriter(spool)
        with (
            envelope.EncryptingWriter(hashing, Keyring.from_settings()) as sealed,
            gzip.GzipFile(
                fileobj=sealed, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL
            ) as compressed,
            cursor.copy(
                f"COPY {partition.sql_name} ({column_sql}) TO STDOUT (FORMAT csv, HEADER)"
            ) as copy,
        ):
            for block in copy:
                compressed.write(block)
        rows = cursor.rowcount
        spool.seek(0)
        saved = default_storage.save(key, File(spool, name=key))
    if saved != key:
        default_storage.delete(saved)
        raise ArchiveError(f"object storage stored {key} as {saved}: an object of that name exists")
    return Export(key, rows, hashing.size, hashing.digest.hexdigest(), columns, sealed.key_id)


@dataclass
class ReadBack:
    sha256: str
    byte_size: int
    rows: int
    header: list[str]
    key_id: str | None


def _read_back(key: str) -> ReadBack:
    """What a stored archive holds, read from storage: sha256 and size of the stored
    bytes, then, decrypted, its data rows, CSV header and the key id wrapping it."""
    if not default_storage.exists(key):
        raise ArchiveError(f"the object {key} is missing from object storage")
    try:
        reader = _HashingReader(_open_object(key))
        opened = envelope.decrypting_reader(reader)
        with opened, gzip.GzipFile(fileobj=opened, mode="rb") as unzipped:
            lines = csv.reader(io.TextIOWrapper(unzipped, encoding="utf-8", newline=""))
            header = next(lines, [])
            rows = sum(1 for _row in lines)
            _drain(opened)  # to the end: the final chunk authenticated, nothing after it
            reader.drain()
            return ReadBack(reader.digest.hexdigest(), reader.size, rows, header, opened.key_id)
    except (
        OSError,
        EOFError,
        zlib.error,
        UnicodeDecodeError,
        csv.Error,
        envelope.EnvelopeError,
    ) as error:
        raise ArchiveError(f"the object {key} cannot be read back: {error}") from error


def verify_object(
    *,
    key: str,
    sha256: str,
    rows: int,
    byte_size: int,
    columns: list[str] | None = None,
    key_id: str | None = None,
) -> None:
    """Read the object back from storage; ArchiveError unless it is exactly what was written.

    `key_id`, when given, is the key the object's data key must be wrapped by.
    """
    found = _read_back(key)
    problems = []
    if found.sha256 != sha256:
        problems.append(f"sha256 {found.sha256} instead of {sha256}")
    if found.byte_size != byte_size:
        problems.append(f"{found.byte_size} bytes instead of {byte_size}")
    if found.rows != rows:
        problems.append(f"{found.rows} rows instead of {rows}")
    if columns is not None and found.header != columns:
        problems.append(f"columns {found.header} instead of {columns}")
    if key_id is not None and found.key_id != key_id:
        problems.append(f"encrypted under key {found.key_id!r} instead of {key_id!r}")
    if problems:
        raise ArchiveError(f"verification of {key} failed: " + "; ".join(problems))


# --- Retention -----------------------------------------------------------------------


@dataclass
class Retired:
    plan: selectors.PlannedPartition
    rows: int
    manifest: ArchivedPartition | None = None

    def as_dict(self) -> dict:
        done = {**self.plan.as_dict(), "rows": self.rows}
        if self.manifest is not None:
            done.update(
                manifest=self.manifest.pk,
                object_key=self.manifest.object_key,
                sha256=self.manifest.sha256,
                byte_size=self.manifest.byte_size,
            )
        return done


def _actor_name(actor) -> str:
    if isinstance(actor, str):
        return actor
    return actor.get_username() if getattr(actor, "is_authenticated", False) else SCHEDULE_ACTOR


def _drop(cursor, partition: selectors.Partition) -> None:
    cursor.execute(f"ALTER TABLE {partition.table.sql_name} DETACH PARTITION {partition.sql_name}")
    cursor.execute(f"DROP TABLE {partition.sql_name}")


def retire_partition(
    *, plan: selectors.PlannedPartition, run: Run, actor, today: date | None = None
) -> Retired:
    """Archive (export, verify, drop) or drop one due partition, in one transaction.

    The plan is made again under the locks, so a legal hold set or rows of another
    dataset landed since the run began are honoured.
    """
    partition = plan.partition
    table = partition.table
    actor_name = _actor_name(actor)
    export = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _lock_table(cursor, table)
            if selectors.partition_for_range(table, partition.start, cursor) != partition:
                raise ArchiveError(f"{partition.name} is no longer attached")
            # Writes to the partition wait until this transaction ends; so does a steward
            # changing a policy of the layer (e.g. setting a legal hold).
            cursor.execute(f"LOCK TABLE {partition.sql_name} IN SHARE MODE")
            layer = next(k for k, v in selectors.TABLE_OF_LAYER.items() if v is table)
            policies = list(RetentionPolicy.objects.filter(layer=layer).select_for_update())
            live, last_restore = selectors.manifests_of_range(partition)
            plan = selectors.plan_partition(
                partition,
                policies,
                today=today or timezone.now().date(),
                cursor=cursor,
                live_archive=live,
                last_restore=last_restore,
            )
            if plan.status != selectors.DUE:
                raise ArchiveError(f"{partition.name} is no longer due: {plan.reason}")
            manifest = None
            if plan.action == RetentionAction.ARCHIVE:
                _remove_leftovers(partition)
                export = _export(cursor, partition, object_key(partition, run.pk))
                verify_object(
                    key=export.key,
                    sha256=export.sha256,
                    rows=export.rows,
                    byte_size=export.byte_size,
                    columns=export.columns,
                    key_id=export.key_id,
                )
                manifest = ArchivedPartition.objects.create(
                    table_name=partition.table_name,
                    partition_name=partition.name,
                    range_start=_midnight(partition.start),
                    range_end=_midnight(partition.end),
                    row_count=export.rows,
                    byte_size=export.byte_size,
                    sha256=export.sha256,
                    object_key=export.key,
                    encryption_key_id=export.key_id,
                    policy_id=plan.policies[0] if plan.policies else None,
                    run=run,
                    archived_by=actor_name,
                )
                rows = export.rows
            else:
                cursor.execute(f"SELECT count(*) FROM {partition.sql_name}")
                rows = cursor.fetchone()[0]
            _drop(cursor, partition)
            done = Retired(plan=plan, rows=rows, manifest=manifest)
            record_audit(
                actor=actor,
                action=AuditAction.DELETE,
                instance=manifest,
                object_type="partition" if manifest is None else "",
                object_id=partition.name if manifest is None else "",
                object_repr=f"{partition.table_name} {partition.name}",
                before={"rows": rows, "range": [str(partition.start), str(partition.end)]},
                after=done.as_dict(),
                detail=(
                    f"archived {rows} rows of {partition.name} to {manifest.object_key} "
                    f"(sha256 {manifest.sha256}, verified), then detached and dropped it"
                    if manifest is not None
                    else f"dropped {partition.name} with its {rows} rows (policy action: delete)"
                ),
            )
            # The run's progress commits with the partition: a run taken over after its
            # worker died still lists what its first delivery retired.
            Run.objects.filter(pk=run.pk).update(
                rows_in=F("rows_in") + rows,
                detail=RawSQL(
                    "jsonb_set(detail, '{retired}', coalesce(detail->'retired', '[]') || %s)",
                    [Jsonb([done.as_dict()])],
                ),
            )
            return done
    except Exception:
        if export is not None:  # rolled back: the object has no manifest
            default_storage.delete(export.key)
        raise


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def request_retention(*, triggered_by: str, actor=None) -> Run:
    """Create an archive run and queue it (after commit); returns the run."""
    from governance.archive.tasks import apply_retention as apply_retention_task

    run = create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by=triggered_by, actor=actor)
    if actor is not None:
        record_audit(
            actor=actor, action=AuditAction.RUN, instance=run, detail="requested retention"
        )
    apply_retention_task.apply_async_on_commit((run.pk,), **maintenance_task_options())
    return run


@contextmanager
def _retention_lock() -> Iterator[bool]:
    """A session lock: one retention run at a time; a killed worker's closes with it."""
    with advisory_locks.try_session_lock(*RETENTION_LOCK) as acquired:
        yield acquired


def apply_retention(*, run: Run, today: date | None = None) -> Run:
    """Retire every due partition; the run says what was archived, dropped, kept and why.

    Each partition is its own transaction (see `retire_partition`); one that fails is
    left whole and named in the run's error, and the others go on. A delivery of the
    task that finds the run taken by another, or ended, leaves it.
    """
    if run.status in ENDED:
        return run
    with run_lock(run) as mine:
        run.refresh_from_db()
        if not mine or run.status in ENDED:
            return run
        with _retention_lock() as acquired:
            if not acquired:
                return skip_run(run, "another retention run is in progress")
            Run.objects.filter(kind=RunKind.ARCHIVE, status=RunStatus.RUNNING).exclude(
                pk=run.pk
            ).update(
                status=RunStatus.FAILED,
                finished_at=timezone.now(),
                error="interrupted: its worker stopped; the partition it was archiving was "
                "rolled back whole (nothing dropped) and a later run took over",
            )
            Run.objects.filter(pk=run.pk).update(
                status=RunStatus.RUNNING, started_at=run.started_at or timezone.now()
            )
            run.refresh_from_db()
            return _retire_due(run, today=today)


def _retire_due(run: Run, *, today: date | None) -> Run:
    actor = run.started_by if run.started_by_id else SCHEDULE_ACTOR
    try:
        plans = selectors.retention_plan(today=today)
    except DatabaseError as error:
        return finish_run(
            run, RunStatus.FAILED, actor=actor, error=f"could not plan retention: {error}"
        )
    failures = []
    for plan in plans:
        if plan.status != selectors.DUE:
            continue
        try:
            retire_partition(plan=plan, run=run, actor=actor, today=today)
        # Whatever went wrong (database, storage client, verification), the partition's
        # transaction rolled back whole: the run names it and goes on with the next one.
        except Exception as error:
            said = error if isinstance(error, ArchiveError) else f"{type(error).__name__}: {error}"
            failures.append(f"{plan.partition_name}: {said}")
    kept = [p.as_dict() for p in plans if p.status != selectors.DUE]
    detail = {"rule": selectors.RETENTION_RULE, "kept": kept, "failed": failures}
    if failures:
        return finish_run(
            run,
            RunStatus.FAILED,
            actor=actor,
            error="nothing was dropped for: " + " | ".join(failures),
            detail=detail,
        )
    return finish_run(run, RunStatus.SUCCEEDED, actor=actor, detail=detail)


# --- Restore ---------------------------------------------------------------------------


def parse_range(table: PartitionedTable, text: str) -> date:
    """The start of the period `text` names: 2026-07-01, 2026-07, 2026-Q3, 2026, or a
    partition name (raw_record_2026_07)."""
    value = text.strip()
    for prefix in (f"{table.name}_",):
        if value.startswith(prefix):
            value = value[len(prefix) :].replace("_q", "-Q").replace("_", "-")
    try:
        if len(value) == 10:
            start = date.fromisoformat(value)
        elif len(value) == 7 and value[4] == "-" and value[5] in "Qq":
            start = date(int(value[:4]), (int(value[6]) - 1) * 3 + 1, 1)
        elif len(value) == 7:
            start = date(int(value[:4]), int(value[5:]), 1)
        elif len(value) == 4:
            start = date(int(value), 1, 1)
        else:
            raise ValueError(value)
    except ValueError:
        raise ArchiveError(
            f"range {text!r} is not understood: give the period's start (2026-07-01), a "
            f"month (2026-07), a quarter (2026-Q3), a year (2026) or the partition name"
        ) from None
    if table.period_start(start) != start:
        raise ArchiveError(
            f"{start} does not begin a {table.interval} of {table.schema}.{table.name}: "
            f"its partitions start on {table.period_start(start)}"
        )
    return start


def restore_partition(*, table: str, range_text: str, actor) -> ArchivedPartition:
    """Restore the archived partition of `table` whose range `range_text` names."""
    try:
        partitioned = by_db_table(table)
    except LookupError as error:
        raise ArchiveError(str(error)) from None
    start = parse_range(partitioned, range_text)
    table_name = f"{partitioned.schema}.{partitioned.name}"
    manifest = ArchivedPartition.objects.filter(
        table_name=table_name, range_start=_midnight(start), restored_at__isnull=True
    ).first()
    if manifest is None:
        archived = ArchivedPartition.objects.filter(
            table_name=table_name, restored_at__isnull=True
        ).order_by("range_start")
        listed = ", ".join(f"{m.range_start:%Y-%m-%d}" for m in archived) or "none"
        raise ArchiveError(
            f"no archived partition of {table_name} starts on {start} (archived ranges: {listed})"
        )
    return restore_archived(manifest=manifest, actor=actor)


def restore_archived(*, manifest: ArchivedPartition, actor) -> ArchivedPartition:
    """Bring an archived partition back from storage, checked against its manifest.

    One transaction: the partition for the range is created (or an empty one used),
    the object streamed through decryption and gzip into it with COPY while the sha256
    of its stored bytes is computed, and the sha256, size and row count compared with
    the manifest. An object archived before encryption is read as it is. Any mismatch, a
    missing object, or a range that already holds rows refuses the restore and leaves
    nothing behind.
    """
    table = by_db_table(manifest.table_name)
    start = manifest.range_start.astimezone(UTC).date()
    end = manifest.range_end.astimezone(UTC).date()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_table(cursor, table)
        manifest = ArchivedPartition.objects.select_for_update().get(pk=manifest.pk)
        if manifest.restored_at is not None:
            raise ArchiveError(
                f"{manifest.partition_name} was already restored on "
                f"{manifest.restored_at:%Y-%m-%d %H:%M} by {manifest.restored_by}"
            )
        if not default_storage.exists(manifest.object_key):
            raise ArchiveError(f"the object {manifest.object_key} is missing from object storage")
        partition = _partition_to_fill(table, cursor, start, end)
        digest, size, rows = _copy_in(cursor, partition, manifest.object_key)
        problems = []
        if digest != manifest.sha256:
            problems.append(f"sha256 {digest} instead of {manifest.sha256}")
        if size != manifest.byte_size:
            problems.append(f"{size} bytes instead of {manifest.byte_size}")
        if rows != manifest.row_count:
            problems.append(f"{rows} rows loaded instead of {manifest.row_count}")
        if problems:
            raise ArchiveError(
                f"restore of {manifest.partition_name} refused, the object does not match its "
                "manifest: " + "; ".join(problems)
            )
        manifest.restored_at = timezone.now()
        manifest.restored_by = _actor_name(actor)
        manifest.save(update_fields=["restored_at", "restored_by"])
        record_audit(
            actor=actor,
            action=AuditAction.ACTION,
            instance=manifest,
            after={"partition": partition.name, "rows": rows, "sha256": digest},
            detail=f"restored {rows} rows of {partition.name} from {manifest.object_key} "
            "(sha256 and row count match the manifest)",
        )
    return manifest


def _partition_to_fill(table: PartitionedTable, cursor, start: date, end: date):
    for partition in selectors.partitions(table, cursor):
        if partition.start == start and partition.end == end:
            if selectors.has_rows(partition, cursor):
                raise ArchiveError(
                    f"{partition.name} already holds rows: restoring would mix them with "
                    "the archive; archive or empty it first"
                )
            return partition
        if partition.start < end and start < partition.end:
            raise ArchiveError(
                f"{partition.name} ({partition.start} to {partition.end}) overlaps the range"
            )
    waiting = rows_in_default_for_range(table, cursor, start, end)
    if waiting:
        raise ArchiveError(
            f"the range already holds {waiting} rows in the DEFAULT partition of "
            f"{table.schema}.{table.name}; partition upkeep moves them first"
        )
    name = create_partition(table, cursor, start)
    return selectors.Partition(table, name, start, end)


def _copy_in(cursor, partition: selectors.Partition, key: str) -> tuple[str, int, int]:
    """COPY the object's rows into the partition; (sha256 and size of the stored bytes,
    rows loaded)."""
    try:
        reader = _HashingReader(_open_object(key))
        opened = envelope.decrypting_reader(reader)
        with opened, gzip.GzipFile(fileobj=opened, mode="rb") as unzipped:
            header_line = unzipped.readline().decode("utf-8")
            header = next(csv.reader([header_line]), [])
            known = set(table_columns(partition.table, cursor))
            unknown = [name for name in header if name not in known]
            if not header or unknown:
                raise ArchiveError(
                    f"the object {key} has columns the table lacks: {unknown or 'no header'}"
                )
            column_sql = ", ".join(f'"{name}"' for name in header)
            # The audit log's entries come back with their own ids, times and hashes.
            with sealing_disabled(partition.table, cursor, partition.sql_name):
                with cursor.copy(
                    f"COPY {partition.sql_name} ({column_sql}) FROM STDIN (FORMAT csv)"
                ) as copy:
                    while block := unzipped.read(READ_CHUNK):
                        copy.write(block)
                rows = cursor.rowcount
            if partition.table is AUDIT_LOG and not {"prev_hash", "hash"} <= set(header):
                # Archived before the audit log was chained: its entries are chained now,
                # as migration 0009 chained the entries in the database then.
                audit_chain.rechain(cursor, partition.name)
            _drain(opened)  # to the end: the final chunk authenticated, nothing after it
            reader.drain()
            return reader.digest.hexdigest(), reader.size, rows
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, envelope.EnvelopeError) as error:
        raise ArchiveError(f"the object {key} cannot be read: {error}") from error
    except (psycopg.Error, DatabaseError) as error:
        raise ArchiveError(f"the rows of {key} cannot be loaded: {error}") from error


# --- Key rotation of archived objects ---------------------------------------------------


def rewrap_archived(*, manifest: ArchivedPartition, actor, keyring: Keyring | None = None) -> bool:
    """Wrap the data key of an archived object by the current key; the body is copied as
    it is, never decrypted into storage. Returns False when there is nothing to do
    (already under the current key, or archived before encryption: plain gzip).

    The re-wrapped object is written beside the old one and verified like a fresh archive
    (sha256 and size of its bytes, then decrypted whole: row count and key id); then the
    manifest is switched to it (object key, sha256, size, key id) under its row lock,
    which a restore also takes, and the old object deleted. Raises ArchiveError with the
    manifest unchanged and the new object removed.
    """
    keyring = keyring or Keyring.from_settings()
    if not manifest.encryption_key_id or manifest.encryption_key_id == keyring.current_id:
        return False
    old_key, old_key_id = manifest.object_key, manifest.encryption_key_id
    if not default_storage.exists(old_key):
        raise ArchiveError(f"the object {old_key} is missing from object storage")
    new_key = None
    try:
        with closing(_open_object(old_key)) as stored:
            rewrapped = envelope.RewrappingReader(stored, keyring)
            if rewrapped.old_key_id != old_key_id:
                raise ArchiveError(
                    f"the manifest of {old_key} records key {old_key_id!r}, the object names "
                    f"{rewrapped.old_key_id!r}"
                )
            written = _HashingReader(rewrapped)
            wanted = envelope.rewrapped_name(old_key)
            new_key = default_storage.save(wanted, File(written, name=wanted))
        verify_object(
            key=new_key,
            sha256=written.digest.hexdigest(),
            rows=manifest.row_count,
            byte_size=written.size,
            key_id=rewrapped.key_id,
        )
        with transaction.atomic():
            current = ArchivedPartition.objects.select_for_update().get(pk=manifest.pk)
            if (current.object_key, current.encryption_key_id) != (old_key, old_key_id):
                raise ArchiveError(f"the manifest of {old_key} changed meanwhile; run this again")
            before = {"object_key": old_key, "encryption_key_id": old_key_id}
            before.update(sha256=current.sha256, byte_size=current.byte_size)
            current.object_key = new_key
            current.encryption_key_id = rewrapped.key_id
            current.sha256 = written.digest.hexdigest()
            current.byte_size = written.size
            current.save(update_fields=["object_key", "encryption_key_id", "sha256", "byte_size"])
            record_audit(
                actor=actor,
                action=AuditAction.UPDATE,
                instance=current,
                before=before,
                after={
                    "object_key": new_key,
                    "encryption_key_id": rewrapped.key_id,
                    "sha256": current.sha256,
                    "byte_size": current.byte_size,
                },
                detail=f"re-wrapped the data key of {old_key} from key {old_key_id!r} to "
                f"{rewrapped.key_id!r} as {new_key} (body unchanged, verified)",
            )
    except BaseException as error:
        if new_key is not None:
            default_storage.delete(new_key)
        if isinstance(error, (envelope.EnvelopeError, OSError)):
            raise ArchiveError(f"the object {old_key} was not re-wrapped: {error}") from error
        raise
    try:
        default_storage.delete(old_key)
    except Exception:  # the manifest names the new object; an old copy left behind is harmless
        logger.warning("could not delete %s after re-wrapping it", old_key, exc_info=True)
    manifest.refresh_from_db()
    return True


def restore_in_background(*, manifest_id: int, user_id: int | None) -> str:
    """The restore task's work: a refusal is written to the audit log, where the admin sees it."""
    from django.contrib.auth import get_user_model

    manifest = ArchivedPartition.objects.filter(pk=manifest_id).first()
    if manifest is None:
        return "no such manifest"
    actor = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    actor = actor or "restore task"
    try:
        restore_archived(manifest=manifest, actor=actor)
    except (ArchiveError, DatabaseError) as error:
        record_audit(
            actor=actor,
            action=AuditAction.ACTION,
            instance=manifest,
            detail=f"restore refused: {error}",
        )
        return f"refused: {error}"
    return "restored"
