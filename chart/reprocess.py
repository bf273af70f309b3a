"""Quarantine review: correct a quarantined record, re-process it, or dismiss it.

The raw record in explore is never changed: a steward's fix is kept on the
quarantined record (`corrected_payload`), and re-processing judges that copy.
Re-processing goes through the promotion's own code (chart.services.prepare_judging:
the same evaluator with the contract, rules, PII scan and protection; chart.writing:
the same gate, the same writes of chart records, PII findings and rule tallies) inside
a run of its own, so that run's counts hold: records in = promoted + quarantined.
Business keys are settled by raw record id (chart.supersession). Each record ends either
in chart (status 're-processed', linked to its chart record) or still quarantined
with the reasons of this run. The watermark is not touched: these raw records lie
below it already. Every action is audited.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from atlas_site.schemas import sql_table
from atlas_site.transactions import may_wait_between_statements
from chart.business_keys import KeyMakers, storable_key
from chart.evaluation import RawRow, RecordEvaluator, Verdict, to_json
from chart.models import QuarantinedRecord, QuarantineStatus
from chart.protected import corrected_context
from chart.rulebook import RuleBook
from chart.services import prepare_judging
from chart.supersession import settle_current
from chart.writing import GateFailedError, reasons_json, store_verdicts
from explore.models import RawRecord
from governance.compliance.keys import Keyring, is_encrypted
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit
from governance.compliance.tokens import fingerprint
from governance.pipeline.models import (
    Dataset,
    DatasetField,
    GateAction,
    Layer,
    Run,
    RunKind,
    RunStatus,
    RunStep,
)

# A re-processing run is a promotion to chart of chosen records, named by its trigger.
from governance.pipeline.services import (
    REPROCESS_TRIGGER,
    create_run,
    finish_run,
    promotion_of,
)

REVIEW_PERMISSION = "chart.change_quarantinedrecord"
# Records locked, judged and written per transaction.
REPROCESS_CHUNK_SIZE = 1000


class QuarantineReviewError(ValueError):
    """A review action that cannot be done as asked; the message says what and where."""


def require_reviewer(actor) -> None:
    """Only people who may change quarantined records review them (stewards)."""
    if not getattr(actor, "is_authenticated", False) or not actor.has_perm(REVIEW_PERMISSION):
        raise PermissionDenied(
            "Correcting, re-processing and dismissing quarantined records needs the "
            "'Can change quarantined record' permission."
        )


def _fingerprint(value: Any) -> str | None:
    # The audit log keeps that a value changed, never the value: it may be PII. A keyed
    # token (ATLAS_HASH_KEY), so a fingerprint cannot be looked up in a table of values.
    return fingerprint(value)


def _selected(records: Iterable[QuarantinedRecord] | QuerySet) -> dict[int, list[int]]:
    """Dataset id -> ids of the chosen quarantined records."""
    if isinstance(records, QuerySet):
        pairs = records.values_list("dataset_id", "pk")
    else:
        pairs = [(record.dataset_id, record.pk) for record in records]
    by_dataset: dict[int, list[int]] = defaultdict(list)
    for dataset_id, pk in pairs:
        by_dataset[dataset_id].append(pk)
    return by_dataset


# --- Reading what a record holds -------------------------------------------------------


def raw_record_of(record: QuarantinedRecord) -> RawRecord | None:
    """The raw record as received; None once its partition was archived."""
    # Through the (dataset, id) index: raw_record's key also holds received_at.
    return RawRecord.objects.filter(dataset_id=record.dataset_id, pk=record.raw_record_id).first()


def corrected_values(record: QuarantinedRecord) -> dict[str, Any] | None:
    """The steward's corrected copy, values of encrypted fields decrypted."""
    if record.corrected_payload is None:
        return None
    keyring = None
    values = {}
    for name, value in record.corrected_payload.items():
        if is_encrypted(value):
            keyring = keyring or Keyring.from_settings()
            value = keyring.decrypt(value, context=corrected_context(record.dataset_id, name))
        values[name] = value
    return values


def current_payload(record: QuarantinedRecord, raw: RawRecord | None) -> dict[str, Any]:
    """What re-processing would judge: the corrected copy, else the payload received."""
    if record.corrected_payload is not None:
        return corrected_values(record)
    if raw is not None and isinstance(raw.payload, dict):
        return dict(raw.payload)
    return {}  # a line that did not parse: a correction starts from nothing


# --- Correcting ------------------------------------------------------------------------


def correct_quarantined_values(
    *,
    record: QuarantinedRecord,
    values: Mapping[str, Any],
    actor,
    keys: KeyMakers | None = None,
) -> QuarantinedRecord:
    """Set field values on the record's corrected copy; the raw record stays as received.

    `values` maps field names (of the contract, or present in the record) to their new
    values. Unchanged values are ignored; nothing changed, nothing is written. A change
    to a business key field makes the record's key again (`keys`: the key makers of a
    bulk correction, built once per dataset).
    """
    require_reviewer(actor)
    with transaction.atomic():
        record = QuarantinedRecord.objects.select_for_update().get(pk=record.pk)
        if record.status != QuarantineStatus.OPEN:
            raise QuarantineReviewError(
                f"quarantined record {record.pk} is {record.get_status_display().lower()}; "
                "only an open record can be corrected"
            )
        payload = current_payload(record, raw_record_of(record))
        known = set(
            DatasetField.objects.filter(dataset_id=record.dataset_id).values_list("name", flat=True)
        ) | set(payload)
        unknown = sorted(set(values) - known)
        if unknown:
            raise QuarantineReviewError(
                f"{unknown[0]!r} is neither a field of the dataset's contract nor of "
                f"quarantined record {record.pk}"
            )
        changed = {name: value for name, value in values.items() if payload.get(name) != value}
        if not changed:
            return record
        before = {name: _fingerprint(payload.get(name)) for name in sorted(changed)}
        corrected = {**payload, **changed}
        record.corrected_payload = _sealed_corrections(record.dataset_id, corrected)
        record.corrected_by = actor
        record.corrected_at = timezone.now()
        updated = ["corrected_payload", "corrected_by", "corrected_at"]
        keys = keys if keys is not None else KeyMakers()
        if set(changed) & set(keys.key_fields(record.dataset_id)):
            record.business_key = storable_key(keys(record.dataset_id).key(corrected))
            updated.append("business_key")
        record.save(update_fields=updated)
        record_audit(
            actor=actor,
            action=AuditAction.UPDATE,
            instance=record,
            before={"corrected_payload": before},
            after={
                "corrected_payload": {name: _fingerprint(changed[name]) for name in sorted(changed)}
            },
            detail=f"corrected {', '.join(sorted(changed))} of raw record "
            f"{record.raw_record_id} (values fingerprinted; the raw record stays as received)",
        )
    return record


def _sealed_corrections(dataset_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """A corrected copy as stored: values of fields whose level requires encryption
    encrypted (as chart would keep them), the rest as typed by the steward."""
    encrypted = set(
        DatasetField.objects.filter(
            dataset_id=dataset_id, classification__requires_encryption=True
        ).values_list("name", flat=True)
    )
    if not encrypted & set(payload):
        return payload
    keyring = Keyring.from_settings()
    return {
        name: keyring.encrypt(_text(value), context=corrected_context(dataset_id, name))
        if name in encrypted and value is not None
        else value
        for name, value in payload.items()
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


# --- Dismissing ------------------------------------------------------------------------


def dismiss_quarantined(
    *, records: Iterable[QuarantinedRecord] | QuerySet, actor, reason: str
) -> int:
    """Close open records without promoting them; the reason is required. Returns how many."""
    require_reviewer(actor)
    reason = (reason or "").strip()
    if not reason:
        raise QuarantineReviewError("a reason is required to dismiss quarantined records")
    ids = [pk for pks in _selected(records).values() for pk in pks]
    with transaction.atomic():
        dismissed = list(
            QuarantinedRecord.objects.select_for_update()
            .filter(pk__in=ids, status=QuarantineStatus.OPEN)
            .order_by("pk")
        )
        now = timezone.now()
        QuarantinedRecord.objects.filter(pk__in=[r.pk for r in dismissed]).update(
            status=QuarantineStatus.DISMISSED,
            resolved_by=actor,
            resolved_at=now,
            resolution_note=reason,
        )
        for record in dismissed:
            record_audit(
                actor=actor,
                action=AuditAction.UPDATE,
                instance=record,
                before={"status": QuarantineStatus.OPEN},
                after={"status": QuarantineStatus.DISMISSED, "resolution_note": reason},
                detail="dismissed from quarantine",
            )
    return len(dismissed)


# --- Re-processing ---------------------------------------------------------------------


def reprocess_quarantined(*, records: Iterable[QuarantinedRecord] | QuerySet, actor) -> list[Run]:
    """Send the chosen open records through the promotion again: one run per dataset.

    Records no longer open are left alone, so repeating a request changes nothing. A
    run is 'skipped' when another promotion of its dataset to chart is running.
    """
    require_reviewer(actor)
    runs = []
    for dataset_id, ids in sorted(_selected(records).items()):
        dataset = Dataset.objects.get(pk=dataset_id)
        runs.append(_reprocess_dataset(dataset=dataset, ids=sorted(ids), actor=actor))
    return runs


def _reprocess_dataset(*, dataset: Dataset, ids: list[int], actor) -> Run:
    run = create_run(
        dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by=REPROCESS_TRIGGER, actor=actor
    )
    record_audit(
        actor=actor,
        action=AuditAction.RUN,
        instance=run,
        detail=f"requested re-processing of {len(ids)} quarantined record(s) of {dataset.slug}",
    )
    # The dataset's promotion lock: a promotion running now writes the same chart rows.
    with promotion_of(run, dataset=dataset, layer=Layer.CHART) as ours:
        if not ours:
            run.refresh_from_db()
            return run
        try:
            totals = _reprocess(dataset=dataset, run=run, ids=ids, actor=actor)
        except GateFailedError as failure:
            return finish_run(run, RunStatus.FAILED, error=str(failure), actor=actor, kept=False)
        except Exception as error:
            finish_run(run, RunStatus.FAILED, error=f"{type(error).__name__}: {error}", actor=actor)
            raise
        return finish_run(run, RunStatus.SUCCEEDED, actor=actor, detail=totals)


def _reprocess(*, dataset: Dataset, run: Run, ids: list[int], actor) -> dict:
    evaluator, rule_book = prepare_judging(dataset)
    step = RunStep.objects.create(run=run, name="re-process quarantined records")
    totals = {"reprocess": {"selected": len(ids), "not_open": 0, "raw_missing": 0}}

    def all_chunks() -> None:
        for start in range(0, len(ids), REPROCESS_CHUNK_SIZE):
            with transaction.atomic():
                skipped = _reprocess_chunk(
                    dataset=dataset,
                    run=run,
                    ids=ids[start : start + REPROCESS_CHUNK_SIZE],
                    evaluator=evaluator,
                    rule_book=rule_book,
                    actor=actor,
                )
            for key, count in skipped.items():
                totals["reprocess"][key] += count

    if dataset.gate_action == GateAction.FAIL:
        # As in a promotion: all or nothing under a 'fail' gate.
        with transaction.atomic():
            may_wait_between_statements()
            all_chunks()
    else:
        all_chunks()
    # No quality score: these records were chosen for having failed, so a score of them
    # says nothing about the dataset (the run's check results still show what failed).
    run.refresh_from_db()
    RunStep.objects.filter(pk=step.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), rows=run.rows_in
    )
    return totals


def _reprocess_chunk(
    *,
    dataset: Dataset,
    run: Run,
    ids: list[int],
    evaluator: RecordEvaluator,
    rule_book: RuleBook,
    actor,
) -> dict[str, int]:
    """Judge and store one chunk of records, in the caller's transaction."""
    records = list(
        QuarantinedRecord.objects.select_for_update()
        .filter(dataset=dataset, pk__in=ids, status=QuarantineStatus.OPEN)
        .order_by("raw_record_id")  # as a promotion reads them: a later line wins
    )
    raws = _raw_rows(dataset, records)
    skipped = {"not_open": len(ids) - len(records), "raw_missing": len(records) - len(raws)}
    if not raws:
        return skipped
    result = store_verdicts(
        dataset=dataset,
        run=run,
        judged=evaluator.judge(raws),
        rule_book=rule_book,
        unique_fields=list(evaluator.unique_fields),
        write_quarantined=lambda held_back, _now: _requarantine(dataset, run, held_back),
        supersede_earlier=lambda written: settle_current(dataset, list(written.values())),
    )
    _resolve_promoted(dataset, run, result.chart_id_of_raw, actor)
    by_raw = {record.raw_record_id: record for record in records}
    for raw_id, _text, _error in raws:
        chart_id = result.chart_id_of_raw.get(raw_id)
        if chart_id is None:
            detail = f"re-processed in run {run.pk}: still quarantined"
            after = {"reprocess_run_id": run.pk}
        else:
            detail = f"re-processed in run {run.pk}: promoted to chart record {chart_id}"
            after = {
                "status": QuarantineStatus.REPROCESSED,
                "chart_record_id": chart_id,
                "reprocess_run_id": run.pk,
            }
        record_audit(
            actor=actor,
            action=AuditAction.UPDATE,
            instance=by_raw[raw_id],
            before={"status": QuarantineStatus.OPEN},
            after=after,
            detail=detail,
        )
    return skipped


def _raw_rows(dataset: Dataset, records: list[QuarantinedRecord]) -> list[RawRow]:
    """(raw id, payload as JSON text, parse error) to judge: a corrected copy wins."""
    stored = {
        raw_id: (text, error)
        for raw_id, text, error in RawRecord.objects.filter(
            dataset=dataset, pk__in=[record.raw_record_id for record in records]
        ).values_list("id", Cast("payload", TextField()), "parse_error")
    }
    rows = []
    for record in records:
        if record.raw_record_id not in stored:
            continue  # archived out of explore: nothing to judge
        if record.corrected_payload is not None:
            rows.append((record.raw_record_id, to_json(corrected_values(record)), ""))
        else:
            text, error = stored[record.raw_record_id]
            rows.append((record.raw_record_id, text, error))
    return rows


def _resolve_promoted(dataset: Dataset, run: Run, chart_id_of_raw: dict[int, int], actor) -> None:
    """Promoted: the record is resolved and linked to the chart record it became."""
    if not chart_id_of_raw:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {sql_table(QuarantinedRecord)} AS q
               SET status = %(status)s, chart_record_id = promoted.chart_id,
                   reprocess_run_id = %(run)s, resolved_by_id = %(actor)s, resolved_at = now(),
                   resolution_note = format('promoted to chart record %%s in run %%s',
                                            promoted.chart_id, %(run)s)
              FROM unnest(%(raw_ids)s::bigint[], %(chart_ids)s::bigint[])
                   AS promoted(raw_id, chart_id)
             WHERE q.dataset_id = %(dataset)s AND q.raw_record_id = promoted.raw_id
            """,
            {
                "status": QuarantineStatus.REPROCESSED,
                "run": run.pk,
                "actor": actor.pk,
                "raw_ids": list(chart_id_of_raw),
                "chart_ids": list(chart_id_of_raw.values()),
                "dataset": dataset.pk,
            },
        )


def _requarantine(dataset: Dataset, run: Run, held_back: list[Verdict]) -> None:
    """Still failing: the record stays quarantined, with this run's reasons."""
    if not held_back:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {sql_table(QuarantinedRecord)} AS q
               SET reasons = fresh.reasons::jsonb, business_key = fresh.business_key,
                   reprocess_run_id = %s
              FROM unnest(%s::bigint[], %s::text[], %s::text[])
                   AS fresh(raw_id, reasons, business_key)
             WHERE q.dataset_id = %s AND q.raw_record_id = fresh.raw_id
            """,
            [
                run.pk,
                [v.raw_id for v in held_back],
                [reasons_json(v.failures) for v in held_back],
                # The key of what was judged now (a correction may have changed it).
                [storable_key(v.business_key) for v in held_back],
                dataset.pk,
            ],
        )


def reasons_summary(reasons: list[dict]) -> str:
    """'email: pattern; amount: range' — for lists and messages."""
    return "; ".join(
        f"{reason.get('field') or 'record'}: {reason.get('rule', '?')}" for reason in reasons
    )


# --- Correcting many at once ---------------------------------------------------------

# The most records one bulk correction touches: each is corrected (and audited) on its own.
BULK_CORRECTION_LIMIT = 1000


def correct_field_in_bulk(
    *,
    records: Iterable[QuarantinedRecord] | QuerySet,
    field: str,
    value: str,
    actor,
    only_where: str | None = None,
) -> list[QuarantinedRecord]:
    """One fix for a group (e.g. country UK -> GB): `field` set to `value` in each open
    record whose current value is `only_where` (any, when None), each correction audited
    as a steward's single correction is. Returns the records corrected; re-process them
    next (reprocess_quarantined)."""
    require_reviewer(actor)
    if not field.strip():
        raise QuarantineReviewError("Name the field to correct.")
    corrected = []
    records = list(records)[:BULK_CORRECTION_LIMIT]
    keys = KeyMakers()
    for record in records:
        if record.status != QuarantineStatus.OPEN:
            continue
        current = current_payload(record, raw_record_of(record)).get(field)
        if only_where is not None and _text(current) != only_where:
            continue
        corrected.append(
            correct_quarantined_values(record=record, values={field: value}, actor=actor, keys=keys)
        )
    return corrected
