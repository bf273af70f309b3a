"""Storing judged records: chart records, quarantine, PII findings, tallies, run counts.

`store_verdicts` is the one write of judged records, shared by a promotion's chunk
(`write_chunk`, which also moves the dataset's chart watermark past the chunk) and a
re-processing of quarantined records (chart.reprocess); the two differ only in how
held-back records are written and how earlier records of a business key are retired.
Rows go in with COPY, the gate decides what is held back, and a 'fail' gate raises
GateFailedError so that nothing of the run is kept.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from atlas_site.schemas import sql_table
from chart.evaluation import JudgedChunk, RawRow, Verdict, to_json
from chart.models import (
    BUSINESS_KEY_LENGTH,
    TYPED_VALUES,
    ChartRecord,
    PiiFinding,
    QuarantinedRecord,
)
from chart.rulebook import RuleBook, add_tallies
from chart.supersession import successors_within, supersede_earlier_chunks
from chart.uniqueness import unique_field_failures
from governance.pipeline.models import Dataset, GateAction, Layer, Run, Watermark
from governance.quality.rules import RuleFailure


class GateFailedError(Exception):
    """The dataset's gate says this run fails; nothing of it is kept."""


@dataclass
class ChunkResult:
    examined: int = 0
    promoted: int = 0
    quarantined: int = 0
    superseded: int = 0
    failing: int = 0
    last_raw_id: int = 0
    pii_by_field: Counter = field(default_factory=Counter)
    expected_pii: Counter = field(default_factory=Counter)
    chart_id_of_raw: dict[int, int] = field(default_factory=dict)


def write_chunk(
    *,
    dataset: Dataset,
    run: Run,
    raws: list[RawRow],
    judged: JudgedChunk,
    rule_book: RuleBook,
    unique_fields: list[str],
) -> ChunkResult:
    """Store a judged chunk and move the watermark past it, in one transaction.

    The watermark must still stand just below the chunk: the promotion lock
    guarantees it, and the check makes any other writer an error, not a duplicate.
    """
    with transaction.atomic():
        watermark, _ = Watermark.objects.select_for_update().get_or_create(
            dataset=dataset, layer=Layer.CHART
        )
        if raws[0][0] <= watermark.position:
            raise RuntimeError(
                f"chart watermark of {dataset.slug} moved to {watermark.position} while "
                f"raw records from {raws[0][0]} were being promoted"
            )
        return write_range(
            dataset=dataset,
            run=run,
            watermark=watermark,
            first_raw_id=raws[0][0],
            last_raw_id=raws[-1][0],
            judged=judged,
            rule_book=rule_book,
            unique_fields=unique_fields,
        )


def write_range(
    *,
    dataset: Dataset,
    run: Run,
    watermark: Watermark,
    first_raw_id: int,
    last_raw_id: int,
    judged: JudgedChunk,
    rule_book: RuleBook,
    unique_fields: list[str],
) -> ChunkResult:
    """Store the judged raw records with ids in [first_raw_id, last_raw_id] and move the
    watermark, locked by the caller's transaction and standing just below them, to the
    range's end (a range may hold no record: the watermark still moves past it)."""
    result = store_verdicts(
        dataset=dataset,
        run=run,
        judged=judged,
        rule_book=rule_book,
        unique_fields=unique_fields,
        write_quarantined=lambda held_back, now: _copy_quarantined(dataset, run, held_back, now),
        supersede_earlier=lambda _written: supersede_earlier_chunks(
            dataset, first_raw_id=first_raw_id, last_raw_id=last_raw_id
        ),
    )
    result.last_raw_id = last_raw_id
    watermark.position = last_raw_id
    watermark.save(update_fields=["position", "updated_at"])
    return result


def _copy_quarantined(dataset: Dataset, run: Run, held_back: list[Verdict], now: str) -> None:
    copy_rows(
        QuarantinedRecord,
        (
            "dataset_id",
            "raw_record_id",
            "reasons",
            "business_key",
            "status",
            "run_id",
            "resolution_note",
            "created_at",
        ),
        (
            (
                dataset.pk,
                v.raw_id,
                reasons_json(v.failures),
                # The key the evaluator made (chart.business_keys); too long to index: none.
                v.business_key if len(v.business_key) <= BUSINESS_KEY_LENGTH else "",
                "open",
                run.pk,
                "",
                now,
            )
            for v in held_back
        ),
    )


def store_verdicts(
    *,
    dataset: Dataset,
    run: Run,
    judged: JudgedChunk,
    rule_book: RuleBook,
    unique_fields: list[str],
    write_quarantined: Callable[[list[Verdict], str], None],
    supersede_earlier: Callable[[dict[int, int]], int],
) -> ChunkResult:
    """Store judged records: chart records, PII findings, rule tallies and run counts.

    The gate decides which records are held back; `write_quarantined(held_back, now)`
    writes those, and `supersede_earlier(chart_id_of_raw)` retires earlier records whose
    business key arrived again in the chart records just written, returning how many.
    A promotion's chunk and a re-processing of quarantined records differ only in these
    two (chart.reprocess).
    """
    verdicts = judged.verdicts
    dataset_id, run_id = dataset.pk, run.pk
    unique_field_failures(dataset, verdicts, unique_fields)
    result = ChunkResult(examined=len(verdicts))
    hold_back = dataset.gate_action != GateAction.WARN

    failing = [v for v in verdicts if v.holds_back]
    result.failing = len(failing)
    to_quarantine = failing if hold_back else []
    to_promote = [v for v in verdicts if not v.holds_back] if hold_back else verdicts
    if dataset.gate_action == GateAction.FAIL and result.failing:
        first = next(v for v in verdicts if v.holds_back)
        reasons = "; ".join(f"{f.field or 'record'}: {f.message}" for f in first.failures[:3])
        raise GateFailedError(
            f"{result.failing} record(s) of this chunk fail the contract or rules and the "
            f"gate is 'fail'; first failing raw record {first.raw_id}: {reasons}"
        )

    # COPY sends every value as text: formatting the time once rather than once per
    # row halves the cost of writing a row.
    now = timezone.now().isoformat()
    write_quarantined(to_quarantine, now)
    ids = _next_ids(ChartRecord, len(to_promote))
    chart_id_of_raw = {v.raw_id: chart_id for v, chart_id in zip(to_promote, ids, strict=True)}
    successor = successors_within(to_promote, chart_id_of_raw)
    copy_rows(
        ChartRecord,
        (
            "id",
            "dataset_id",
            "raw_record_id",
            "business_key",
            "data",
            "extras",
            "tokens",
            "sealed",
            "protection_version",
            "issues",
            "is_current",
            "superseded_by_id",
            "run_id",
            "created_at",
        ),
        (
            (
                chart_id,
                dataset_id,
                v.raw_id,
                v.business_key,
                v.data,
                v.extras,
                v.tokens,
                v.sealed,
                TYPED_VALUES,
                reasons_json(v.failures),
                v.raw_id not in successor,
                successor.get(v.raw_id),
                run_id,
                now,
            )
            for v, chart_id in zip(to_promote, ids, strict=True)
        ),
    )
    result.superseded = len(successor) + supersede_earlier(chart_id_of_raw)
    result.chart_id_of_raw = chart_id_of_raw
    findings = []
    for verdict in verdicts:
        if not verdict.findings:
            continue
        chart_id = chart_id_of_raw.get(verdict.raw_id)
        for finding in verdict.findings:
            findings.append(
                (
                    dataset_id,
                    verdict.raw_id,
                    chart_id,
                    finding.field[:63],
                    finding.pii_type,
                    finding.pattern_id,
                    round(finding.confidence, 2),
                    finding.masked_excerpt[:200],
                    finding.start,
                    finding.end,
                    run_id,
                    now,
                )
            )
            result.pii_by_field[(finding.field, finding.pii_type)] += 1
    result.expected_pii = judged.expected_pii
    copy_rows(
        PiiFinding,
        (
            "dataset_id",
            "raw_record_id",
            "chart_record_id",
            "field_name",
            "pii_type",
            "pattern_id",
            "confidence",
            "masked_excerpt",
            "span_start",
            "span_end",
            "run_id",
            "created_at",
        ),
        findings,
    )
    add_tallies(run, rule_book.tally(verdicts, duplicate_keys=result.superseded))

    result.promoted, result.quarantined = len(to_promote), len(to_quarantine)
    Run.objects.filter(pk=run.pk).update(
        rows_in=F("rows_in") + result.examined,
        rows_promoted=F("rows_promoted") + result.promoted,
        rows_quarantined=F("rows_quarantined") + result.quarantined,
    )
    return result


def reasons_json(failures: list[RuleFailure]) -> str:
    """A record's failures as chart stores them (quarantine reasons, warn-gate issues)."""
    # Most records fail nothing: their empty list needs no encoding.
    return to_json([f.as_reason() for f in failures]) if failures else "[]"


def copy_rows(model, columns: tuple[str, ...], rows) -> None:
    """COPY rows into the model's table: far cheaper than INSERTs for thousands of rows."""
    sql = f"COPY {sql_table(model)} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.connection.cursor().copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _next_ids(model, count: int) -> list[int]:
    """Reserve ids from the table's identity sequence, so rows can point at each other."""
    if not count:
        return []
    with connection.cursor() as cursor:
        # The sequence is looked up once: in the generate_series query below, the
        # lookup would run once per id and cost eight times the ids themselves.
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [sql_table(model)])
        sequence = cursor.fetchone()[0]
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count]
        )
        return [row[0] for row in cursor.fetchall()]
