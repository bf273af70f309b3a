"""Chart values protected as today's classifications say: re-protection and legacy rebuild.

Re-protect (`reprotect_chart`, a queued run of kind REPROTECT): when a field's level
changes in a way that changes what chart stores (encrypted or not, or which PII the
level expects in free text; governance.pipeline.classification decides and queues
the run), every typed chart record of the dataset is read back to its originals
(chart.protected.originals: decrypted, unsealed) and stored again through the
evaluator's `protect_values`, under the dataset's chart promotion lock. Records are
walked in chunks along the (dataset, raw record) unique index; each chunk commits its
records together with its position in `run.detail`, so a killed worker's retry resumes
after the last committed chunk. Re-protecting a record already re-protected changes
nothing material and is not written again (ciphertexts of the same value differ, their
tokens do not). Fields no longer in the contract keep what chart holds of them.

Rebuild (`rebuild_legacy_records`, `manage.py rebuild_chart_values`): records stored
before Atlas kept typed values (protection_version 1) hold values masked at promotion,
which nothing can turn back. They are rebuilt from explore: the raw payload (or, for a
record that came out of quarantine re-processing, the steward's corrected payload,
decrypted where it is encrypted), typed by the contract and stored through
`protect_values`; each chunk commits its records at version 2. A record whose raw record
was archived out of explore cannot be rebuilt: its encrypted values get their tokens (and
are decrypted where today's level no longer encrypts), its masked values stay masked,
and it stays at version 1, counted in the report with the archived partitions that hold
the raw records (`where_archived`): restoring them (`manage.py restore_partition`) and
running the rebuild again rebuilds those records too. They are not read from the archive
objects directly: an object is a whole month of raw records, verified against its
manifest only once read to its end, so a value read from it before then is unverified;
a restore reads it whole anyway, verifies it and audits it in one transaction.
"""

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from atlas_site import advisory_locks
from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from atlas_site.partitions import RAW_RECORDS
from atlas_site.schemas import sql_table
from chart.business_keys import fill_quarantine_keys
from chart.evaluation import Outcome, RecordEvaluator, excerpt_at_level
from chart.judging import build_evaluator
from chart.lineage import record_chart_lineage
from chart.models import LEGACY_MASKED, TYPED_VALUES, ChartRecord, QuarantinedRecord
from chart.protected import corrected_context, originals, typed
from chart.supersession import settle_current
from explore.models import LandingBatch, RawRecord
from governance.archive.models import ArchivedPartition
from governance.compliance.keys import Keyring, field_context, is_encrypted
from governance.compliance.models import AuditAction
from governance.compliance.pii.masking import mask_matches
from governance.compliance.pii.scanner import SCAN_FIELDS, compile_patterns, scan_value
from governance.compliance.services import record_audit
from governance.compliance.tokens import is_token
from governance.pipeline.models import Dataset, DatasetField, Layer, Run, RunStatus, RunStep
from governance.pipeline.services import (
    ENDED,
    finish_run,
    promotion_lock,
    promotion_of,
    request_reprotect,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# A run skipped because a promotion held the dataset is followed by another, this late.
FOLLOW_UP_SECONDS = 60
STORED_COLUMNS = ["data", "extras", "tokens", "sealed", "business_key"]


@dataclass
class Stored:
    """What a chart record holds of its values."""

    data: dict[str, Any]
    extras: dict[str, Any]
    tokens: dict[str, str]
    sealed: dict[str, dict[str, str]]
    business_key: str

    @classmethod
    def of(cls, record: ChartRecord) -> "Stored":
        return cls(
            data=record.data,
            extras=record.extras or {},
            tokens=record.tokens or {},
            sealed=record.sealed or {},
            business_key=record.business_key,
        )

    def put_into(self, record: ChartRecord) -> None:
        record.data, record.extras, record.tokens = self.data, self.extras, self.tokens
        record.sealed, record.business_key = self.sealed, self.business_key


class Protector:
    """Today's protection of a dataset's values: built once per run."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.evaluator: RecordEvaluator = build_evaluator(dataset, [])
        self.keyring: Keyring = self.evaluator.keyring
        self.field_types = dict(
            DatasetField.objects.filter(dataset=dataset).values_list("name", "data_type")
        )

    def in_contract(self, values: dict[str, Any]) -> dict[str, Any]:
        protections = self.evaluator.protections
        return {name: value for name, value in values.items() if name in protections}


# --- Re-protect -------------------------------------------------------------------------


def reprotect_chart(*, dataset: Dataset, run: Run, chunk_size: int = CHUNK_SIZE) -> Run:
    """Store the dataset's chart values again as today's classifications say; resumable.

    The run stays queued while a promotion holds the dataset (its task tries again),
    and is skipped, with a follow-up run queued, when one took the lock just before it.
    """
    if run.status in ENDED:
        return run
    if advisory_locks.is_held(advisory_locks.PROMOTE_CHART, dataset.pk):
        return run  # still queued (or running elsewhere): nothing to do here now
    with promotion_of(run, dataset=dataset, layer=Layer.CHART) as ours:
        if not ours:
            run.refresh_from_db()
            if run.status == RunStatus.SKIPPED:
                follow_up = request_reprotect(
                    dataset=dataset,
                    triggered_by=f"after skipped run {run.pk}",
                    reason=f"run {run.pk} was skipped: a promotion held {dataset.slug}",
                    countdown=FOLLOW_UP_SECONDS,
                )
                if follow_up is not None:
                    run.detail = {**run.detail, "followed_by": follow_up.pk}
                    Run.objects.filter(pk=run.pk).update(detail=run.detail)
            return run
        try:
            totals = _reprotect_records(dataset=dataset, run=run, chunk_size=chunk_size)
            # Quarantined records' keys follow too: a key part held as its token or not.
            keys = fill_quarantine_keys(datasets=[dataset])
            record_chart_lineage(dataset=dataset, run=run)
        except DATABASE_OUTAGE_ERRORS:
            # The database went away: the run stays 'running' with its committed chunks,
            # and the task's retry resumes after the last of them.
            raise
        except Exception as error:
            logger.exception("re-protecting the chart values of %s failed", dataset.slug)
            finish_run(run, RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
            raise
        return finish_run(
            run, RunStatus.SUCCEEDED, detail={"reprotect": totals, "quarantine_keys": keys}
        )


def _reprotect_records(*, dataset: Dataset, run: Run, chunk_size: int) -> dict[str, int]:
    protector = Protector(dataset)
    step = RunStep.objects.create(run=run, name="re-protect chart values")
    # Where an earlier delivery of this run stopped (nothing: from the start).
    progress = {"last_raw_record_id": 0, "records": 0, "changed": 0}
    progress.update((run.detail or {}).get("reprotect") or {})
    while True:
        with transaction.atomic():
            # Along chart_record_raw_idx (dataset, raw record): no other index leads with the
            # dataset, and a walk in id order would read every dataset's records.
            records = list(
                ChartRecord.objects.select_for_update()
                .filter(
                    dataset=dataset,
                    protection_version=TYPED_VALUES,
                    raw_record_id__gt=progress["last_raw_record_id"],
                )
                .order_by("raw_record_id")[:chunk_size]
            )
            if not records:
                break
            changed = [record for record in records if reprotect_record(record, protector)]
            if changed:
                ChartRecord.objects.bulk_update(changed, STORED_COLUMNS)
            progress = {
                "last_raw_record_id": records[-1].raw_record_id,
                "records": progress["records"] + len(records),
                "changed": progress["changed"] + len(changed),
            }
            # Committed with the chunk: a retry resumes after it.
            run.detail = {**run.detail, "reprotect": progress}
            Run.objects.filter(pk=run.pk).update(detail=run.detail)
    RunStep.objects.filter(pk=step.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), rows=progress["records"]
    )
    return progress


def reprotect_record(record: ChartRecord, protector: Protector) -> bool:
    """Store the record's values as today's levels say; whether anything material changed."""
    data, extras = originals(record, field_types=protector.field_types, keyring=protector.keyring)
    outcome = protector.evaluator.protect_values(protector.in_contract(data), extras)
    stored = _merged(record, outcome, protector.evaluator.business_key)
    if _materially_same(Stored.of(record), stored):
        return False
    stored.put_into(record)
    return True


def _merged(record: ChartRecord, outcome: Outcome, business_key: list[str]) -> Stored:
    """The outcome for the contract's fields; fields outside it kept as chart holds them."""
    old_tokens = record.tokens or {}
    old_sealed = (record.sealed or {}).get("data", {})
    new_sealed = outcome.sealed.get("data", {})
    data, tokens, sealed_data = {}, {}, {}
    for name, value in record.data.items():
        if name in outcome.data:
            data[name], token_source, sealed_source = outcome.data[name], outcome.tokens, new_sealed
        else:
            data[name], token_source, sealed_source = value, old_tokens, old_sealed
        if name in token_source:
            tokens[name] = token_source[name]
        if name in sealed_source:
            sealed_data[name] = sealed_source[name]
    sealed = {}
    if sealed_data:
        sealed["data"] = sealed_data
    if outcome.sealed.get("extras"):
        sealed["extras"] = outcome.sealed["extras"]

    def held_as_token(values: dict, originals_kept: dict, name: str) -> bool:
        return is_encrypted(values.get(name)) or name in originals_kept

    # The key changes only where a key part changes between its value and its token: a
    # key made under another business key definition is left as it was made.
    rekeyed = any(
        held_as_token(record.data, old_sealed, name) != held_as_token(data, sealed_data, name)
        for name in business_key
        if name in outcome.data
    )
    return Stored(
        data=data,
        extras=outcome.extras,
        tokens=tokens,
        sealed=sealed,
        business_key=outcome.business_key if rekeyed else record.business_key,
    )


def _materially_same(old: Stored, new: Stored) -> bool:
    """The same values, tokens and key; ciphertexts of the same value count as the same."""
    if (new.business_key, new.tokens, new.extras) != (old.business_key, old.tokens, old.extras):
        return False
    if list(new.data) != list(old.data):
        return False
    for where in ("data", "extras"):
        if set(new.sealed.get(where, {})) != set(old.sealed.get(where, {})):
            return False
    for name, value in new.data.items():
        before = old.data[name]
        if is_encrypted(value) and is_encrypted(before):
            continue  # equal tokens (compared above): the same value
        if value != before:
            return False
    return True


# --- Rebuild legacy records -----------------------------------------------------------------


@dataclass
class RebuildProgress:
    dataset: str
    done: int
    left: int
    rate: float  # records per second


@dataclass(frozen=True)
class ArchivedSource:
    """An archived partition of explore.raw_record holding raw records of records kept."""

    partition: str  # raw_record_2024_01
    restore_range: str  # as `manage.py restore_partition explore.raw_record` takes it: 2024-01
    records: int  # kept records whose raw record it holds


@dataclass
class RebuildReport:
    rebuilt: int = 0
    # Raw record archived out of explore: encrypted values tokenised, the rest kept, at 1.
    archived: int = 0
    superseded: int = 0
    # Datasets a promotion held: run the command again for them.
    busy: list[str] = field(default_factory=list)
    # Where the raw records of the records kept at 1 are (see where_archived).
    restore: list[ArchivedSource] = field(default_factory=list)
    unplaced: int = 0


def legacy_records():
    return ChartRecord.objects.filter(protection_version=LEGACY_MASKED)


def rebuild_legacy_records(
    *,
    dataset: Dataset | None = None,
    batch_size: int = CHUNK_SIZE,
    progress: Callable[[RebuildProgress], None] | None = None,
    actor="manage.py rebuild_chart_values",
) -> RebuildReport:
    """Turn legacy (masked at promotion) chart records typed again from explore.

    Chunk by chunk, each committing its records' new values and version: stopping and
    running it again resumes with the records still at version 1. Each dataset is
    rebuilt under its chart promotion lock; a dataset a promotion holds is reported
    in `busy` and left for the next run of the command.
    """
    if dataset is not None:
        datasets = [dataset]
    else:
        datasets = list(
            Dataset.objects.filter(pk__in=legacy_records().values("dataset_id")).order_by("pk")
        )
    report = RebuildReport()
    for each in datasets:
        with promotion_lock(each, Layer.CHART) as acquired:
            if not acquired:
                report.busy.append(each.slug)
                continue
            counts = _rebuild_dataset(each, batch_size=batch_size, progress=progress)
        report.rebuilt += counts.rebuilt
        report.archived += counts.archived
        report.superseded += counts.superseded
        if counts.archived:
            sources, unplaced = where_archived(dataset=each)
            report.restore = _merged_sources(report.restore, sources)
            report.unplaced += unplaced
        if counts.rebuilt or counts.archived:
            record_audit(
                actor=actor,
                action=AuditAction.ACTION,
                instance=each,
                detail=f"rebuilt {counts.rebuilt} legacy chart records of {each.slug} as typed "
                f"values from explore; {counts.archived} kept at protection version 1 (their "
                "raw records were archived: encrypted values tokenised, masked values kept)",
            )
    return report


# The months of the raw records of a dataset's records kept at version 1, found through
# their batches' raw id ranges (the batch's received_at is its rows' partition key): a
# record in no batch's range is counted apart (month NULL).
KEPT_MONTHS_SQL = """
WITH kept AS (
    SELECT id, raw_record_id FROM {chart_record}
     WHERE dataset_id = %(dataset_id)s AND protection_version = %(legacy)s
),
placed AS (
    SELECT DISTINCT kept.id,
           date_trunc('month', batch.received_at AT TIME ZONE 'UTC')::date AS month
      FROM kept
      JOIN {landing_batch} AS batch
        ON batch.dataset_id = %(dataset_id)s
       AND kept.raw_record_id BETWEEN batch.first_raw_id AND batch.last_raw_id
)
SELECT month, count(*) FROM placed GROUP BY month
UNION ALL
SELECT NULL, count(*) FROM kept WHERE NOT EXISTS (SELECT FROM placed WHERE placed.id = kept.id)
"""


def where_archived(*, dataset: Dataset) -> tuple[list[ArchivedSource], int]:
    """The archived partitions holding the raw records of the dataset's records kept at
    version 1, and how many of those records are in none (a partition dropped by
    retention rather than archived, or a record in no batch's range): those cannot be
    rebuilt at all."""
    sql = KEPT_MONTHS_SQL.format(
        chart_record=sql_table(ChartRecord), landing_batch=sql_table(LandingBatch)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"dataset_id": dataset.pk, "legacy": LEGACY_MASKED})
        months: list[tuple[date | None, int]] = cursor.fetchall()
    sources: list[ArchivedSource] = []
    unplaced = 0
    for month, records in months:
        if month is None:
            unplaced += records
            continue
        start = RAW_RECORDS.period_start(month)
        manifest = ArchivedPartition.objects.filter(
            table_name=RAW_RECORDS.label,
            range_start=datetime(start.year, start.month, start.day, tzinfo=UTC),
            restored_at__isnull=True,
        ).first()
        if manifest is None:
            unplaced += records
            continue
        sources.append(ArchivedSource(manifest.partition_name, f"{start:%Y-%m}", records))
    return sorted(sources, key=lambda source: source.restore_range), unplaced


def _merged_sources(
    first: list[ArchivedSource], second: list[ArchivedSource]
) -> list[ArchivedSource]:
    counts: dict[tuple[str, str], int] = {}
    for source in [*first, *second]:
        key = (source.partition, source.restore_range)
        counts[key] = counts.get(key, 0) + source.records
    return [
        ArchivedSource(partition, restore_range, records)
        for (partition, restore_range), records in sorted(counts.items(), key=lambda i: i[0][1])
    ]


def _rebuild_dataset(
    dataset: Dataset, *, batch_size: int, progress: Callable[[RebuildProgress], None] | None
) -> RebuildReport:
    protector = Protector(dataset)
    counts = RebuildReport()
    total = legacy_records().filter(dataset=dataset).count()
    started, last_id = time.monotonic(), 0
    while True:
        with transaction.atomic():
            records = list(
                legacy_records()
                .select_for_update()
                .filter(dataset=dataset, id__gt=last_id)
                .order_by("id")[:batch_size]
            )
            if not records:
                break
            payloads = _payloads(dataset, records, protector.keyring)
            rebuilt, archived = [], []
            for record in records:
                payload = payloads.get(record.pk)
                if isinstance(payload, dict):
                    _rebuild(record, payload, protector)
                    rebuilt.append(record)
                elif _salvage(record, protector):
                    archived.append(record)
                else:
                    counts.archived += 1  # nothing encrypted to salvage: left as it is
            ChartRecord.objects.bulk_update(rebuilt, [*STORED_COLUMNS, "protection_version"])
            ChartRecord.objects.bulk_update(archived, STORED_COLUMNS)
            # A key part that is a token now matches the newer records' keys: of each
            # key, the latest line is the current record.
            counts.superseded += settle_current(dataset, [record.pk for record in rebuilt])
            last_id = records[-1].pk
        counts.rebuilt += len(rebuilt)
        counts.archived += len(archived)
        if progress is not None:
            done = counts.rebuilt + counts.archived
            elapsed = max(time.monotonic() - started, 1e-6)
            progress(RebuildProgress(dataset.slug, done, max(total - done, 0), done / elapsed))
    return counts


def _payloads(dataset: Dataset, records: list[ChartRecord], keyring: Keyring) -> dict[int, Any]:
    """Chart record id -> the payload it was judged from: a correction, else the raw one."""
    raw = dict(
        RawRecord.objects.filter(
            dataset=dataset, pk__in=[record.raw_record_id for record in records]
        ).values_list("id", "payload")
    )
    corrected = dict(
        QuarantinedRecord.objects.filter(
            dataset=dataset, chart_record_id__in=[record.pk for record in records]
        )
        .filter(corrected_payload__isnull=False)
        .values_list("chart_record_id", "corrected_payload")
    )
    payloads = {}
    for record in records:
        if record.pk in corrected:
            payloads[record.pk] = _decrypted_correction(
                corrected[record.pk], keyring=keyring, dataset_id=dataset.pk
            )
        elif record.raw_record_id in raw:
            payloads[record.pk] = raw[record.raw_record_id]
    return payloads


def _decrypted_correction(payload: dict, *, keyring: Keyring, dataset_id: int) -> dict:
    """A steward's corrected payload; corrections of encrypted fields are kept encrypted."""
    return {
        name: keyring.decrypt(value, context=corrected_context(dataset_id, name))
        if is_encrypted(value)
        else value
        for name, value in payload.items()
    }


def _rebuild(record: ChartRecord, payload: dict, protector: Protector) -> None:
    evaluator = protector.evaluator
    checked = evaluator.contract.check(payload)
    outcome = evaluator.protect_values(checked.data, checked.extras)
    Stored(
        data=outcome.data,
        extras=outcome.extras,
        tokens=outcome.tokens,
        sealed=outcome.sealed,
        business_key=outcome.business_key,
    ).put_into(record)
    record.protection_version = TYPED_VALUES


def _salvage(record: ChartRecord, protector: Protector) -> bool:
    """What can be done without the raw record: its encrypted values protected as today.

    Legacy records encrypted the values of encrypting levels (as now) and masked the
    others: the masked ones are lost for good. Returns whether anything changed.
    """
    decrypted = {
        name: typed(
            protector.field_types.get(name),
            protector.keyring.decrypt(value, context=field_context(record.dataset_id, name)),
        )
        for name, value in record.data.items()
        if is_encrypted(value) and name in protector.evaluator.protections
    }
    if not decrypted:
        return False
    outcome = protector.evaluator.protect_values(decrypted, {})
    record.data = {name: outcome.data.get(name, value) for name, value in record.data.items()}
    record.tokens = {**(record.tokens or {}), **outcome.tokens}
    if outcome.sealed.get("data"):
        sealed = dict(record.sealed or {})
        sealed["data"] = {**sealed.get("data", {}), **outcome.sealed["data"]}
        record.sealed = sealed
    record.business_key = _salvaged_key(record, decrypted, outcome, protector)
    return True


def _salvaged_key(
    record: ChartRecord, decrypted: dict[str, Any], outcome: Outcome, protector: Protector
) -> str:
    """The legacy key (values in clear, '|'-joined) with encrypted parts as their tokens."""
    names = protector.evaluator.business_key
    if not any(name in decrypted for name in names) or not record.business_key:
        return record.business_key
    if is_token(record.business_key):
        return record.business_key  # salvaged before
    parts = record.business_key.split("|")
    if len(parts) != len(names):
        # A value held '|': the parts cannot be told apart. Keep no value in clear.
        return protector.evaluator.token_keyring.token(record.business_key)
    for index, name in enumerate(names):
        if name not in decrypted:
            continue
        value = outcome.data[name]
        hidden = is_encrypted(value) or name in outcome.sealed.get("data", {})
        parts[index] = outcome.tokens[name] if hidden else str(value)
    return "|".join(parts)


# --- Messages stored before they were kept free of values -------------------------------

# Before messages were kept free of values, a type failure said what it got:
# "expected an integer, got '123-45-6789'". The message keeps what was expected.
_VALUE_IN_MESSAGE = re.compile(r", got .*$", re.DOTALL)
_VALUE_IN_RUN_ERROR = re.compile(r", got .*?(?=; |$)", re.DOTALL)
SCRUB_CHUNK = 2000


def scrub_legacy_messages(apps) -> dict[str, int]:
    """Reasons, warn-gate issues, check results' examples and run errors stored before
    Atlas kept values out of them, rewritten: each message without the value it quoted,
    each excerpt protected at its field's level as the promotion now stores it.

    Run once, by migration chart 0007 (every row existing then is such a row; a second
    pass would mask masked excerpts again). Takes the historical `apps`.
    """
    DatasetField = apps.get_model("pipeline", "DatasetField")
    PiiPattern = apps.get_model("compliance", "PiiPattern")
    patterns = compile_patterns(
        PiiPattern.objects.filter(enabled=True).order_by("id").values(*SCAN_FIELDS)
    )
    levels: dict[int, dict[str, tuple]] = {}

    def excerpt_protector(dataset_id: int) -> Callable[[str, str], str]:
        if dataset_id not in levels:
            levels[dataset_id] = {
                name: (masking, encrypted, rank)
                for name, masking, encrypted, rank in DatasetField.objects.filter(
                    dataset_id=dataset_id, classification__isnull=False
                ).values_list(
                    "name",
                    "classification__masking",
                    "classification__requires_encryption",
                    "classification__rank",
                )
            }
        fields = levels[dataset_id]
        highest = max(fields.values(), key=lambda level: level[2]) if fields else None

        def protect(field_name: str, excerpt: str) -> str:
            if not excerpt:
                return ""
            level = fields.get(field_name) if field_name else highest
            if level is None:
                matches = scan_value(excerpt, patterns)
                return mask_matches(excerpt, matches) if matches else excerpt
            return excerpt_at_level(excerpt, masking=level[0], requires_encryption=level[1])

        return protect

    counts = {}
    for label, column, dataset_path in (
        ("chart.QuarantinedRecord", "reasons", "dataset_id"),
        ("chart.ChartRecord", "issues", "dataset_id"),
        ("quality.CheckResult", "failing_examples", "run__dataset_id"),
    ):
        model = apps.get_model(label)
        counts[label] = 0
        last_id = 0
        while True:
            rows = list(
                model.objects.filter(id__gt=last_id)
                .exclude(**{column: []})
                .order_by("id")
                .values_list("id", dataset_path, column)[:SCRUB_CHUNK]
            )
            if not rows:
                break
            changed = []
            for pk, dataset_id, items in rows:
                clean = _scrubbed(items, excerpt_protector(dataset_id)) if dataset_id else items
                if clean != items:
                    changed.append(model(pk=pk, **{column: clean}))
            model.objects.bulk_update(changed, [column])
            counts[label] += len(changed)
            last_id = rows[-1][0]
    Run = apps.get_model("pipeline", "Run")
    runs = Run.objects.filter(error__contains=", got ")
    counts["pipeline.Run"] = 0
    for run in runs.only("id", "error").iterator(chunk_size=SCRUB_CHUNK):
        run.error = _VALUE_IN_RUN_ERROR.sub("", run.error)
        run.save(update_fields=["error"])
        counts["pipeline.Run"] += 1
    return counts


def _scrubbed(items: Any, protect: Callable[[str, str], str]) -> Any:
    """A stored list of reasons (or examples) without values in its messages."""
    if not isinstance(items, list):
        return items
    clean = []
    for item in items:
        if isinstance(item, dict):
            message = str(item.get("message") or "")
            item = {
                **item,
                "message": _VALUE_IN_MESSAGE.sub("", message)
                if message.startswith("expected ")
                else message,
                "value_excerpt": protect(
                    str(item.get("field") or ""), str(item.get("value_excerpt") or "")
                ),
            }
        clean.append(item)
    return clean
