"""Restore: an archived partition brought back from storage into its range, checked
against its manifest, in one transaction."""

import csv
import gzip
import zlib
from datetime import UTC, date

import psycopg
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from atlas_site.partitions import (
    AUDIT_LOG,
    Partition,
    PartitionedTable,
    attached_partitions,
    by_db_table,
    create_partition,
    rows_in_default_for_range,
    sealing_disabled,
    table_columns,
)
from governance.archive import selectors
from governance.archive.models import ArchivedPartition
from governance.archive.services.ddl import ArchiveError, lock_table
from governance.archive.services.objects import READ_CHUNK, HashingReader, drain, open_object
from governance.archive.services.retention import actor_name_of, midnight
from governance.compliance import audit_chain, envelope
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit


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
            f"{start} does not begin a {table.interval} of {table.label}: "
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
    table_name = partitioned.label
    manifest = ArchivedPartition.objects.filter(
        table_name=table_name, range_start=midnight(start), restored_at__isnull=True
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
        lock_table(cursor, table)
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
        manifest.restored_by = actor_name_of(actor)
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
    for partition in attached_partitions(table, cursor):
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
            f"{table.label}; partition upkeep moves them first"
        )
    name = create_partition(table, cursor, start)
    return Partition(table, name, start, end)


def _copy_in(cursor, partition: Partition, key: str) -> tuple[str, int, int]:
    """COPY the object's rows into the partition; (sha256 and size of the stored bytes,
    rows loaded)."""
    try:
        reader = HashingReader(open_object(key))
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
            drain(opened)  # to the end: the final chunk authenticated, nothing after it
            reader.drain()
            return reader.digest.hexdigest(), reader.size, rows
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, envelope.EnvelopeError) as error:
        raise ArchiveError(f"the object {key} cannot be read: {error}") from error
    except (psycopg.Error, DatabaseError) as error:
        raise ArchiveError(f"the rows of {key} cannot be loaded: {error}") from error


def restore_in_background(*, manifest_id: int, user_id: int | None) -> str:
    """The restore task's work: a refusal is written to the audit log, where the admin sees it."""
    manifest = ArchivedPartition.objects.filter(pk=manifest_id).first()
    if manifest is None:
        return "no such manifest"
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    actor = user or "restore task"
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
