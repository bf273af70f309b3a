"""Promotion explore → chart: the contract, quality rules, PII protection, the gate.

Work is claimed in chunks above the dataset's chart watermark; each chunk commits
its chart records, quarantined records, PII findings, rule tallies, run counts and
the new watermark in one transaction, so a worker killed mid-run loses nothing and
a re-delivered task resumes where the last commit left off. One promotion per
dataset runs at a time (a PostgreSQL advisory lock); a second request is recorded
as skipped. Under a 'fail' gate the whole run is one transaction: if it fails,
nothing of it is promoted or quarantined.

This module holds the run; its parts live beside it:
- chart.judging: the evaluator, built from the contract, rules and classifications;
- chart.chunks: reading raw records in chunks bounded by rows and bytes;
- chart.evaluation, chart.evaluation_pool: judging records, in worker processes;
- chart.writing: storing a judged chunk (chart records, quarantine, PII findings);
- chart.uniqueness, chart.supersession: unique fields, and business keys arriving again;
- chart.rulebook: rule tallies, check results and the run's quality score;
- chart.lineage, chart.suggestions: lineage edges, classification suggestions;
- chart.shared_promotion: a promotion shared by several workers (ATLAS_PROMOTION_HELPERS).
"""

import logging
from collections import Counter, deque

from django.db import transaction
from django.utils import timezone

from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from atlas_site.transactions import may_wait_between_statements
from chart.chunks import CHUNK_BYTES, CHUNK_SIZE, ChunkReader
from chart.evaluation import RawRow, RecordEvaluator
from chart.evaluation_pool import BrokenProcessPool, PendingChunk, evaluation_pool
from chart.judging import build_evaluator
from chart.lineage import record_chart_lineage
from chart.rulebook import RuleBook, score_run
from chart.shared_promotion import helpers_wanted, shared_totals, work_on_chunks
from chart.signals import helpers_wanted as helpers_wanted_signal
from chart.suggestions import raise_classification_suggestions
from chart.writing import ChunkResult, GateFailedError, write_chunk
from governance.pipeline.models import (
    Dataset,
    GateAction,
    Layer,
    Run,
    RunKind,
    RunStatus,
    RunStep,
    Watermark,
)
from governance.pipeline.services import (
    create_run,
    finish_run,
    promotion_of,
)
from governance.quality.models import QualityRule
from governance.quality.rules import sync_contract_rules

logger = logging.getLogger(__name__)

CHUNKS_AHEAD = 2  # chunks handed to the evaluation pool while the one before is written
# A chunk whose judging kills an evaluation process this many times fails the run.
EVALUATION_CRASHES = 3


class EvaluationCrashError(RuntimeError):
    """Judging one chunk killed its evaluation process EVALUATION_CRASHES times."""


def promote_to_chart(
    *,
    dataset: Dataset,
    triggered_by: str,
    actor=None,
    run: Run | None = None,
    chunk_size: int = CHUNK_SIZE,
    chunk_bytes: int = CHUNK_BYTES,
    helpers: int | None = None,
) -> Run:
    """Promote every raw record above the watermark into chart or quarantine.

    Records are read and committed in chunks of at most `chunk_size` records and
    `chunk_bytes` of payload (see chart.chunks). With `helpers` (default:
    ATLAS_PROMOTION_HELPERS) above 0 and a gate other than 'fail', that many more
    workers are asked to share the chunks (chart.shared_promotion).
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
                dataset=dataset,
                run=run,
                chunk_size=chunk_size,
                chunk_bytes=chunk_bytes,
                helpers=helpers_wanted() if helpers is None else helpers,
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


def help_promote_to_chart(
    *, run: Run, chunk_size: int = CHUNK_SIZE, chunk_bytes: int = CHUNK_BYTES
) -> int:
    """Share the chunks of a running shared promotion; returns how many were committed here.

    The run's owner synced the contract's rules before asking for help: a helper judges
    with the rules as they are, and never ends the run.
    """
    dataset = run.dataset
    if run.status != RunStatus.RUNNING or dataset is None:
        return 0
    rules = list(
        QualityRule.objects.filter(dataset=dataset, is_active=True).select_related("dimension")
    )
    evaluator = build_evaluator(dataset, rules)
    return work_on_chunks(
        dataset=dataset,
        run=run,
        evaluator=evaluator,
        rule_book=RuleBook(rules),
        unique_fields=list(evaluator.unique_fields),
        chunk_size=chunk_size,
        chunk_bytes=chunk_bytes,
        owner=False,
    )


def _promote(
    *,
    dataset: Dataset,
    run: Run,
    chunk_size: int,
    chunk_bytes: int = CHUNK_BYTES,
    helpers: int = 0,
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
        # All or nothing: one transaction for the whole run, idle while the pool judges.
        with transaction.atomic():
            may_wait_between_statements()
            promote_all()
            score = score_run(dataset, run)
            if score is not None and score.below_threshold:
                raise GateFailedError(
                    f"quality score {score.overall} is below the threshold "
                    f"{dataset.quality_threshold} and the gate is 'fail'"
                )
    elif helpers > 0:
        # Shared: every chunk is claimed by whoever is free, this worker among them; the
        # counts are summed from the chunks, whoever committed them.
        helpers_wanted_signal.send(sender=Run, run=run, helpers=helpers)
        work_on_chunks(
            dataset=dataset,
            run=run,
            evaluator=evaluator,
            rule_book=rule_book,
            unique_fields=unique_fields,
            chunk_size=chunk_size,
            chunk_bytes=chunk_bytes,
            owner=True,
        )
        shared = shared_totals(run)
        totals.update(chunks=shared.chunks, superseded=shared.superseded, failing=shared.failing)
        totals["shared_by"] = helpers + 1
        pii_by_field.update(shared.pii_by_field)
        expected_pii.update(shared.expected_pii)
        score = _score_and_gate(dataset, run, totals)
    else:
        promote_all()
        score = _score_and_gate(dataset, run, totals)
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


def _score_and_gate(dataset: Dataset, run: Run, totals: dict):
    """The run's quality score; below the threshold of a 'warn' or 'quarantine' gate, said."""
    score = score_run(dataset, run)
    if score is not None and score.below_threshold:
        totals["gate"] = (
            f"quality score {score.overall} is below the threshold {dataset.quality_threshold}"
            + (
                "; failing rows were quarantined"
                if dataset.gate_action == GateAction.QUARANTINE
                else "; promoted with a warning"
            )
        )
    return score
