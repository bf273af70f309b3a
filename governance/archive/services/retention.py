"""Retention: retiring due partitions (archive, verify, drop, or drop alone), one
transaction each, and the archive run that retires every due one."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone
from psycopg.types.json import Jsonb

from atlas_site import advisory_locks
from atlas_site.partitions import Partition
from governance.archive import selectors
from governance.archive.models import ArchivedPartition, RetentionAction, RetentionPolicy
from governance.archive.services.ddl import ArchiveError, lock_table
from governance.archive.services.objects import (
    export_partition,
    object_key,
    remove_leftovers,
    verify_object,
)
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.pipeline.models import Run, RunKind, RunStatus
from governance.pipeline.services import ENDED, create_run, finish_run, run_lock, skip_run

SCHEDULE_ACTOR = "retention schedule"
# The retention run's advisory lock: one at a time.
RETENTION_LOCK = (advisory_locks.RETENTION, 0)


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


def actor_name_of(actor) -> str:
    """Who did it, as manifests record it: a name, a user's username, or the schedule."""
    if isinstance(actor, str):
        return actor
    return actor.get_username() if getattr(actor, "is_authenticated", False) else SCHEDULE_ACTOR


def _drop(cursor, partition: Partition) -> None:
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
    actor_name = actor_name_of(actor)
    export = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            lock_table(cursor, table)
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
                remove_leftovers(partition)
                export = export_partition(cursor, partition, object_key(partition, run.pk))
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
                    range_start=midnight(partition.start),
                    range_end=midnight(partition.end),
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


def midnight(day: date) -> datetime:
    """A range bound as manifests store it: the day's midnight UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def open_retention_run(*, triggered_by: str, actor=None) -> Run:
    """Create an archive run (audited when a person asked for it); the caller queues it
    (`governance.archive.tasks.request_retention`)."""
    # An archive run has no dataset; create_run's annotation (governance.pipeline.services)
    # does not say so yet.
    run = create_run(
        dataset=None,
        kind=RunKind.ARCHIVE,
        triggered_by=triggered_by,
        actor=actor,
    )
    if actor is not None:
        record_audit(
            actor=actor, action=AuditAction.RUN, instance=run, detail="requested retention"
        )
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
