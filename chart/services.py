"""Promotion explore → chart: the contract, quality rules, PII protection, the gate.

Work is claimed in chunks above the dataset's chart watermark; each chunk commits
its chart records, quarantined records, PII findings, rule tallies, run counts and
the new watermark in one transaction, so a worker killed mid-run loses nothing and
a re-delivered task resumes where the last commit left off. One promotion per
dataset runs at a time (a PostgreSQL advisory lock); a second request is recorded
as skipped. Under a 'fail' gate the whole run is one transaction: if it fails,
nothing of it is promoted or quarantined.
"""

import json
import logging
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from chart.chunks import CHUNK_BYTES, CHUNK_SIZE, ChunkReader
from chart.contract import CompiledContract
from chart.evaluation import (
    FieldProtection,
    JudgedChunk,
    RawRow,
    RecordEvaluator,
    Verdict,
    to_json,
)
from chart.evaluation_pool import BrokenProcessPool, PendingChunk, evaluation_pool
from chart.models import TYPED_VALUES, ChartRecord, PiiFinding, QuarantinedRecord
from governance.compliance.keys import Keyring
from governance.compliance.models import (
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
    SuggestionStatus,
)
from governance.compliance.pii.scanner import load_patterns
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import (
    Dataset,
    DatasetField,
    FieldType,
    GateAction,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    RunStep,
    Transform,
    Watermark,
)
from governance.pipeline.services import (
    create_run,
    finish_run,
    promotion_of,
)
from governance.quality.models import CheckResult, QualityRule, RuleKind, RuleOrigin
from governance.quality.rules import RecordRuleCheck, RuleFailure, sync_contract_rules
from governance.quality.scoring import RuleTally, record_scores

logger = logging.getLogger(__name__)

CHUNKS_AHEAD = 2  # chunks handed to the evaluation pool while the one before is written
# A chunk whose judging kills an evaluation process this many times fails the run.
EVALUATION_CRASHES = 3
FAILING_EXAMPLES_PER_RULE = 5


class GateFailedError(Exception):
    """The dataset's gate says this run fails; nothing of it is kept."""


class EvaluationCrashError(RuntimeError):
    """Judging one chunk killed its evaluation process EVALUATION_CRASHES times."""


# --- Building the evaluator -------------------------------------------------------


def field_protections(dataset: Dataset) -> dict[str, FieldProtection]:
    fields = DatasetField.objects.filter(dataset=dataset).select_related("classification")
    return {
        f.name: FieldProtection(
            name=f.name,
            level_name=f.classification.name if f.classification else None,
            rank=f.classification.rank if f.classification else None,
            requires_encryption=bool(f.classification and f.classification.requires_encryption),
            masking=f.classification.masking if f.classification else "none",
            free_text=f.data_type == FieldType.STRING,
        )
        for f in fields
    }


def unique_field_names(dataset: Dataset) -> list[str]:
    return list(
        DatasetField.objects.filter(dataset=dataset, unique=True).values_list("name", flat=True)
    )


def build_evaluator(dataset: Dataset, rules: list[QualityRule]) -> RecordEvaluator:
    protections = field_protections(dataset)
    now = timezone.now()
    # Contract rules other than freshness are judged by the contract check itself;
    # uniqueness needs the database and is judged per chunk.
    record_rules = [
        RecordRuleCheck(rule=rule, now=now)
        for rule in rules
        if (rule.origin == RuleOrigin.STEWARD or rule.kind == RuleKind.FRESHNESS)
        and rule.kind != RuleKind.UNIQUE
    ]
    return RecordEvaluator(
        dataset_id=dataset.pk,
        contract=CompiledContract.for_dataset(dataset),
        record_rules=record_rules,
        patterns=load_patterns(),
        protections=protections,
        business_key=list(dataset.business_key),
        # Both always: PII may turn up in any free-text field and must be sealed.
        keyring=Keyring.from_settings(),
        tokens=TokenKeyring.from_settings(),
        expected_rank=dict(
            PiiPattern.objects.filter(default_classification__isnull=False).values_list(
                "pk", "default_classification__rank"
            )
        ),
        unique_fields=unique_field_names(dataset),
    )


# --- One chunk ----------------------------------------------------------------------


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


class RuleBook:
    """The run's rules, keyed the way failures name them, with per-chunk tallies."""

    def __init__(self, rules: list[QualityRule]):
        self.rules = rules
        self.by_key = {(rule.field_name, rule.kind): rule for rule in rules}

    def tally(self, verdicts: list[Verdict], duplicate_keys: int) -> list[RuleTally]:
        """Each rule's passed and failed records in a chunk.

        Only failures are walked: a judged record that did not fail a rule passed it,
        so the work follows the failures, not records times rules.
        """
        tallies = {rule.pk: RuleTally(rule=rule) for rule in self.rules}
        judged = 0
        for verdict in verdicts:
            if any(failure.rule == "parse" for failure in verdict.failures):
                continue  # a line that did not parse was never judged
            judged += 1
            failed_rules = set()
            for failure in verdict.failures:
                rule = self.by_key.get((failure.field, failure.rule))
                if rule is None:
                    continue
                failed_rules.add(rule.pk)
                tally = tallies[rule.pk]
                if len(tally.examples or []) < FAILING_EXAMPLES_PER_RULE:
                    tally.add_example(
                        {"raw_record": verdict.raw_id, **failure.as_reason()},
                        FAILING_EXAMPLES_PER_RULE,
                    )
            for rule_pk in failed_rules:
                tallies[rule_pk].failed += 1
        for tally in tallies.values():
            if _is_key_rule(tally.rule):
                # The business key is judged per chunk: its duplicates are the records
                # this chunk superseded.
                tally.failed += duplicate_keys
                tally.passed += max(judged - duplicate_keys, 0)
            else:
                tally.passed += judged - tally.failed
        return [t for t in tallies.values() if t.passed or t.failed]


def _is_key_rule(rule: QualityRule) -> bool:
    return rule.kind == RuleKind.UNIQUE and not rule.field_name


def _add_tallies(run: Run, tallies: list[RuleTally]) -> None:
    """Add a chunk's counts to the run's check results, in the chunk's transaction."""
    if not tallies:
        return
    with connection.cursor() as cursor:
        for tally in tallies:
            cursor.execute(
                f"""
                INSERT INTO {_table(CheckResult)} AS existing
                    (run_id, rule_id, passed_count, failed_count, failing_examples, created_at)
                VALUES (%s, %s, %s, %s, %s::jsonb, now())
                ON CONFLICT (run_id, rule_id) DO UPDATE SET
                    passed_count = existing.passed_count + EXCLUDED.passed_count,
                    failed_count = existing.failed_count + EXCLUDED.failed_count,
                    failing_examples = (
                        SELECT coalesce(jsonb_agg(example), '[]'::jsonb) FROM (
                            SELECT example FROM jsonb_array_elements(
                                existing.failing_examples || EXCLUDED.failing_examples
                            ) AS example LIMIT {FAILING_EXAMPLES_PER_RULE}
                        ) AS kept
                    )
                """,
                [
                    run.pk,
                    tally.rule.pk,
                    tally.passed,
                    tally.failed,
                    json.dumps(tally.examples or []),
                ],
            )


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _unique_field_failures(dataset: Dataset, verdicts: list[Verdict], unique_fields: list[str]):
    """Values of unique fields already held by another current record (or twice here).

    Compared by their keyed tokens, which every unique field has whatever its level: an
    encrypted value differs at each encryption, its token does not.
    """
    for name in unique_fields:
        seen: dict[str, Verdict] = {}
        candidates = [v for v in verdicts if not v.holds_back and name in v.unique_values]
        values = {v.unique_values[name] for v in candidates}
        if not values:
            continue
        taken_values = dict(
            ChartRecord.objects.filter(dataset=dataset, is_current=True)
            .filter(**{f"tokens__{name}__in": list(values)})
            .values_list(f"tokens__{name}", "business_key")
        )
        for verdict in candidates:
            value = verdict.unique_values[name]
            # The same business key is a newer version of that record, not a duplicate;
            # records without a business key are never versions of each other.
            key = verdict.business_key
            clash = (value in taken_values and (not key or taken_values[value] != key)) or (
                value in seen and (not key or seen[value].business_key != key)
            )
            if clash:
                verdict.failures.append(
                    RuleFailure(name, RuleKind.UNIQUE, "another record already holds this value")
                )
            seen[value] = verdict


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
        return _write_verdicts(dataset, run, watermark, raws, judged, rule_book, unique_fields)


def _write_verdicts(
    dataset: Dataset,
    run: Run,
    watermark: Watermark,
    raws: list[RawRow],
    judged: JudgedChunk,
    rule_book: RuleBook,
    unique_fields: list[str],
) -> ChunkResult:
    first_raw_id, last_raw_id = raws[0][0], raws[-1][0]
    result = store_verdicts(
        dataset=dataset,
        run=run,
        judged=judged,
        rule_book=rule_book,
        unique_fields=unique_fields,
        write_quarantined=lambda held_back, now: _copy_quarantined(dataset, run, held_back, now),
        supersede_earlier=lambda _written: _supersede_earlier_chunks(
            dataset, first_raw_id=first_raw_id, last_raw_id=last_raw_id
        ),
    )
    result.last_raw_id = last_raw_id
    watermark.position = last_raw_id
    watermark.save(update_fields=["position", "updated_at"])
    return result


def _copy_quarantined(dataset: Dataset, run: Run, held_back: list[Verdict], now: str) -> None:
    _copy(
        QuarantinedRecord,
        (
            "dataset_id",
            "raw_record_id",
            "reasons",
            "status",
            "run_id",
            "resolution_note",
            "created_at",
        ),
        (
            (dataset.pk, v.raw_id, _reasons_json(v.failures), "open", run.pk, "", now)
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
    _unique_field_failures(dataset, verdicts, unique_fields)
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
    successor = _successors(to_promote, chart_id_of_raw)
    _copy(
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
                _reasons_json(v.failures),
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
    _copy(
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
    _add_tallies(run, rule_book.tally(verdicts, duplicate_keys=result.superseded))

    result.promoted, result.quarantined = len(to_promote), len(to_quarantine)
    Run.objects.filter(pk=run.pk).update(
        rows_in=F("rows_in") + result.examined,
        rows_promoted=F("rows_promoted") + result.promoted,
        rows_quarantined=F("rows_quarantined") + result.quarantined,
    )
    return result


def _reasons_json(failures: list[RuleFailure]) -> str:
    # Most records fail nothing: their empty list needs no encoding.
    return to_json([f.as_reason() for f in failures]) if failures else "[]"


def _copy(model, columns: tuple[str, ...], rows) -> None:
    """COPY rows into the model's table: far cheaper than INSERTs for thousands of rows."""
    sql = f"COPY {_table(model)} ({', '.join(columns)}) FROM STDIN"
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
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [_table(model)])
        sequence = cursor.fetchone()[0]
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count]
        )
        return [row[0] for row in cursor.fetchall()]


def _successors(promoted: list[Verdict], chart_id_of_raw: dict[int, int]) -> dict[int, int]:
    """Within a chunk, raw id -> chart id of the later record with the same business key."""
    successor: dict[int, int] = {}
    later: dict[str, int] = {}
    for verdict in reversed(promoted):  # raw id order: a later line wins
        if not verdict.business_key:
            continue
        if verdict.business_key in later:
            successor[verdict.raw_id] = later[verdict.business_key]
        later[verdict.business_key] = chart_id_of_raw[verdict.raw_id]
    return successor


def _supersede_earlier_chunks(dataset: Dataset, *, first_raw_id: int, last_raw_id: int) -> int:
    """Records of earlier chunks whose business key arrived again stop being current.

    The chunk's chart records (those of its raw ids) are already written; the first
    of each business key supersedes the current record of an earlier chunk.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {_table(ChartRecord)} AS old
               SET is_current = false, superseded_by_id = new.id
              FROM (
                  SELECT DISTINCT ON (business_key) business_key, id
                    FROM {_table(ChartRecord)}
                   WHERE dataset_id = %(dataset)s AND business_key <> ''
                     AND raw_record_id BETWEEN %(first_raw_id)s AND %(last_raw_id)s
                   ORDER BY business_key, id
              ) AS new
             WHERE old.dataset_id = %(dataset)s AND old.is_current
               AND old.business_key = new.business_key AND old.id < new.id
            """,
            {"dataset": dataset.pk, "first_raw_id": first_raw_id, "last_raw_id": last_raw_id},
        )
        return cursor.rowcount


# --- The run --------------------------------------------------------------------------


def promote_to_chart(
    *,
    dataset: Dataset,
    triggered_by: str,
    actor=None,
    run: Run | None = None,
    chunk_size: int = CHUNK_SIZE,
    chunk_bytes: int = CHUNK_BYTES,
) -> Run:
    """Promote every raw record above the watermark into chart or quarantine.

    Records are read and committed in chunks of at most `chunk_size` records and
    `chunk_bytes` of payload (see chart.chunks).
    """
    if run is None:
        run = create_run(
            dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by=triggered_by, actor=actor
        )
    with promotion_of(run, dataset=dataset, layer=Layer.CHART) as ours:
        if not ours:
            return run
        try:
            totals = _promote(
                dataset=dataset, run=run, chunk_size=chunk_size, chunk_bytes=chunk_bytes
            )
        except GateFailedError as failure:
            # Under a failed 'fail' gate nothing of the run was kept.
            return finish_run(run, RunStatus.FAILED, error=str(failure), actor=actor, kept=False)
        except DATABASE_OUTAGE_ERRORS:
            # The database went away (Django's errors, or psycopg's from a COPY): the run
            # stays 'running' with its committed chunks, and the task's retry (once the
            # database is back) resumes from the watermark.
            raise
        except Exception as error:
            logger.exception("promotion of %s to chart failed", dataset.slug)
            finish_run(run, RunStatus.FAILED, error=f"{type(error).__name__}: {error}", actor=actor)
            raise
        return finish_run(run, RunStatus.SUCCEEDED, actor=actor, detail=totals)


def prepare_judging(dataset: Dataset) -> tuple[RecordEvaluator, RuleBook]:
    """The evaluator and rule book of a run: the contract and rules as they are now."""
    sync_contract_rules(dataset=dataset)
    rules = list(
        QualityRule.objects.filter(dataset=dataset, is_active=True).select_related("dimension")
    )
    return build_evaluator(dataset, rules), RuleBook(rules)


def _promote(
    *, dataset: Dataset, run: Run, chunk_size: int, chunk_bytes: int = CHUNK_BYTES
) -> dict:
    evaluator, rule_book = prepare_judging(dataset)
    unique_fields = list(evaluator.unique_fields)
    step = RunStep.objects.create(run=run, name="validate, protect and promote")
    totals: dict = {"chunks": 0, "superseded": 0, "failing": 0}
    pii_by_field: Counter = Counter()
    expected_pii: Counter = Counter()

    def add(result: ChunkResult) -> None:
        totals["chunks"] += 1
        totals["superseded"] += result.superseded
        totals["failing"] += result.failing
        pii_by_field.update(result.pii_by_field)
        expected_pii.update(result.expected_pii)

    def promote_all() -> None:
        # While a chunk is written here, the pool judges the chunks after it. Two are
        # kept ahead, so that the workers still have one to judge when they finish a
        # chunk before this process has finished writing the one before.
        #
        # An evaluation process can be killed (the kernel's OOM killer, a crash in C):
        # the pool breaks and every chunk in it is lost, none written. The pool is
        # started again and the chunks are read again from the last one written. The
        # chunks that were in the pool are then judged one at a time, so that a second
        # crash names its chunk; one that kills its process EVALUATION_CRASHES times
        # fails the run, naming its raw records.
        watermark = Watermark.objects.filter(dataset=dataset, layer=Layer.CHART).first()
        written = watermark.position if watermark else 0
        last_read: int | None = written
        ahead: deque[tuple[list[RawRow], PendingChunk]] = deque()
        crashes: Counter = Counter()  # first raw id of a chunk -> crashes while judging it
        one_at_a_time_until = 0  # raw id: chunks up to it are judged alone
        reader = ChunkReader(dataset_id=dataset.pk, chunk_size=chunk_size, chunk_bytes=chunk_bytes)
        with evaluation_pool(evaluator) as pool:
            while True:
                depth = 0 if written < one_at_a_time_until else CHUNKS_AHEAD
                raws: list[RawRow] = []
                try:
                    while len(ahead) <= depth and last_read is not None:
                        raws = reader.read(after_id=last_read)
                        if not raws:
                            last_read = None  # nothing more to read
                            break
                        last_read = raws[-1][0]
                        ahead.append((raws, pool.submit(raws)))
                    if not ahead:
                        break
                    raws, pending = ahead[0]
                    judged = pending.result()
                except BrokenProcessPool:
                    # The crash is put to the first chunk not written yet.
                    chunks = [chunk for chunk, _ in ahead] or [raws]
                    first, last = chunks[0][0][0], chunks[0][-1][0]
                    crashes[first] += 1
                    if crashes[first] >= EVALUATION_CRASHES:
                        raise EvaluationCrashError(
                            f"judging the raw records with ids {first} to {last} "
                            f"({len(chunks[0])} records) killed its evaluation process "
                            f"{crashes[first]} times (out of memory, or a crash)"
                        ) from None
                    in_flight = max(chunk[-1][0] for chunk in [*chunks, raws] if chunk)
                    logger.warning(
                        "promotion of %s: an evaluation process died judging raw records "
                        "%s-%s (crash %s of this chunk); the pool is started again and the "
                        "promotion goes on after raw record %s",
                        dataset.slug,
                        first,
                        last,
                        crashes[first],
                        written,
                    )
                    totals["evaluation_restarts"] = totals.get("evaluation_restarts", 0) + 1
                    one_at_a_time_until = max(one_at_a_time_until, in_flight)
                    ahead.clear()
                    pool.restart()
                    last_read = written
                    continue
                ahead.popleft()
                add(
                    write_chunk(
                        dataset=dataset,
                        run=run,
                        raws=raws,
                        judged=judged,
                        rule_book=rule_book,
                        unique_fields=unique_fields,
                    )
                )
                written = raws[-1][0]

    if dataset.gate_action == GateAction.FAIL:
        # All or nothing: one transaction for the whole run.
        with transaction.atomic():
            promote_all()
            score = _score(dataset, run)
            if score is not None and score.below_threshold:
                raise GateFailedError(
                    f"quality score {score.overall} is below the threshold "
                    f"{dataset.quality_threshold} and the gate is 'fail'"
                )
    else:
        promote_all()
        score = _score(dataset, run)
        if score is not None and score.below_threshold:
            totals["gate"] = (
                f"quality score {score.overall} is below the threshold {dataset.quality_threshold}"
                + (
                    "; failing rows were quarantined"
                    if dataset.gate_action == GateAction.QUARANTINE
                    else "; promoted with a warning"
                )
            )
    run.refresh_from_db()
    RunStep.objects.filter(pk=step.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), rows=run.rows_in
    )
    record_chart_lineage(dataset=dataset, run=run)
    raise_classification_suggestions(dataset=dataset, run=run)
    totals["pii_findings"] = sum(pii_by_field.values())
    # PII where the field's classification expects it (already protected by its level).
    totals["pii_expected"] = {
        f"{name}:{pii_type}": count for (name, pii_type), count in sorted(expected_pii.items())
    }
    return totals


def _score(dataset: Dataset, run: Run):
    tallies = [
        RuleTally(
            rule=result.rule,
            passed=result.passed_count,
            failed=result.failed_count,
            examples=result.failing_examples,
        )
        for result in CheckResult.objects.filter(run=run).select_related("rule__dimension")
    ]
    if not tallies:
        return None
    return record_scores(run=run, dataset=dataset, tallies=tallies)


# --- Lineage and classification suggestions --------------------------------------------


def record_chart_lineage(*, dataset: Dataset, run: Run) -> None:
    """Dataset- and field-level lineage explore → chart, with the transform applied."""
    protections = field_protections(dataset)
    edges = [("", "", Transform.TYPED)] + [
        (name, name, protection.transform) for name, protection in protections.items()
    ]
    for source_field, target_name, transform in edges:
        # A field whose protection changed gets a new edge; the old one stays as history.
        LineageEdge.objects.update_or_create(
            dataset=dataset,
            source_layer=Layer.EXPLORE,
            source_field=source_field,
            target_layer=Layer.CHART,
            target_name=target_name,
            transform=transform,
            defaults={"run": run},
        )


SUGGESTION_MIN_HIT_RATIO = 0.05


def raise_classification_suggestions(*, dataset: Dataset, run: Run) -> list:
    """Suggest a level for unclassified fields where this run found PII."""
    fields = {
        f.name: f for f in DatasetField.objects.filter(dataset=dataset, classification__isnull=True)
    }
    if not fields:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT field_name, pii_type, count(DISTINCT raw_record_id),
                   (array_agg(masked_excerpt))[1:3]
              FROM {_table(PiiFinding)}
             WHERE run_id = %s AND field_name = ANY(%s)
             GROUP BY field_name, pii_type
            """,
            [run.pk, list(fields)],
        )
        rows = cursor.fetchall()
    scanned = max(run.rows_in, 1)
    by_field: dict[str, dict] = defaultdict(lambda: {"types": {}, "examples": []})
    for name, pii_type, hits, examples in rows:
        by_field[name]["types"][pii_type] = hits
        by_field[name]["examples"].extend(examples)
    default_levels = dict(
        PiiPattern.objects.filter(default_classification__isnull=False).values_list(
            "pii_type", "default_classification"
        )
    )
    raised = []
    for name, evidence in by_field.items():
        hits = max(evidence["types"].values())
        ratio = hits / scanned
        if ratio < SUGGESTION_MIN_HIT_RATIO:
            continue
        types = sorted(evidence["types"])
        level_ids = [default_levels[t] for t in types if t in default_levels]
        level = (
            ClassificationLevel.objects.filter(pk__in=level_ids).order_by("-rank").first()
            or ClassificationLevel.objects.order_by("-rank").first()
        )
        # Tenths of hit ratio: a rejection stands until the evidence really changes.
        evidence_key = f"{','.join(types)}@{int(ratio * 10)}"
        field_obj = fields[name]
        rejected = ClassificationSuggestion.objects.filter(
            dataset_field=field_obj, status=SuggestionStatus.REJECTED, evidence_key=evidence_key
        ).exists()
        if rejected:
            continue
        suggestion, _ = ClassificationSuggestion.objects.update_or_create(
            dataset_field=field_obj,
            status=SuggestionStatus.OPEN,
            defaults={
                "suggested_level": level,
                "pii_types": types,
                "values_scanned": scanned,
                "values_with_pii": hits,
                "examples": evidence["examples"][:5],
                "evidence_key": evidence_key,
                "run": run,
            },
        )
        raised.append(suggestion)
    return raised
