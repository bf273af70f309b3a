"""A promotion shared by every worker: chunks claimed by whoever is free, committed in order.

The run's owner (the delivery of its task holding the run's and the dataset's locks, as
in a one-worker promotion) asks ATLAS_PROMOTION_HELPERS more workers to help, on any
host; the owner and every helper then run the same loop over `pipeline.run_chunk`:

- claim: a chunk whose lease ran out (its claimant died or hangs) is taken over first,
  lowest first (`FOR UPDATE SKIP LOCKED`); otherwise the next raw records above the
  run's last chunk are read (chart.chunks: bounded by rows and bytes) and recorded as
  a new chunk, claimed by the reader. Reading the next chunk is one worker at a time
  (a transaction lock per run), so chunks are contiguous raw id ranges
  (after_id, last_id] numbered in raw id order;
- judge: the contract, rules and PII scan (chart.evaluation), in the worker's own
  process: with no database, this is most of the work, and it runs on every worker
  at once;
- commit, in raw id order: a chunk is written when the chart watermark stands at its
  `after_id`, i.e. every chunk before it is committed. Its chart records, quarantined
  records, findings, tallies, run counts, the watermark and its own `done` mark commit
  together, the watermark row locked, so it commits exactly once: a second claimant
  (its first one only slow) finds the watermark past it and drops its copy. A worker
  whose chunk is not yet due judges the next one meanwhile (at most HELD_AHEAD held).

Supersession and uniqueness are decided exactly as in a one-worker promotion, because
they are decided where they were: in the commit (chart.writing.store_verdicts), against
every chunk committed before, in the same order. Only judging, which needs no other
record, is shared. The commit is the serial part: about a fifth of a record's cost.

A chunk commits only while the run is 'running' (its row locked) and its owner holds
the run's lock: a helper never writes for a run that ended, was failed as interrupted,
or whose owner died (the watchdog sends the run's task again; the new owner goes on
with the run's chunks). The owner ends the run once every chunk is committed and
nothing more is there to read: the score, lineage and the run's end (and so what comes
next) are its, as in a one-worker promotion.
"""

import gc
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from atlas_site import advisory_locks
from atlas_site.schemas import sql_table
from chart.chunks import ChunkReader
from chart.evaluation import JudgedChunk, RawRow, RecordEvaluator
from chart.rulebook import RuleBook
from chart.writing import ChunkResult, write_range
from explore.models import RawRecord
from governance.pipeline.models import (
    ChunkStatus,
    Dataset,
    Layer,
    Run,
    RunChunk,
    RunStatus,
    Watermark,
)

logger = logging.getLogger(__name__)

# Judged chunks a worker may hold while the chunk before them is someone else's.
HELD_AHEAD = 2
# Seconds between looks when nothing can be claimed or committed yet.
POLL_SECONDS = 0.05
# A chunk claimed this many times without being committed fails the run: it kills or
# hangs whoever judges it.
CHUNK_ATTEMPTS = 5

COMMITTED, DONE_ELSEWHERE, NOT_YET, NO_OWNER, RUN_ENDED = (
    "committed",
    "done elsewhere",
    "not yet",
    "no owner",
    "run ended",
)


class ChunkKeepsFailingError(RuntimeError):
    """A chunk was claimed CHUNK_ATTEMPTS times and never committed."""


@dataclass
class ClaimedChunk:
    pk: int
    seq: int
    after_id: int
    last_id: int
    raws: list[RawRow]
    judged: JudgedChunk | None = None


@dataclass
class SharedTotals:
    """What the run's committed chunks counted, whoever committed them."""

    chunks: int = 0
    superseded: int = 0
    failing: int = 0
    pii_by_field: Counter = field(default_factory=Counter)
    expected_pii: Counter = field(default_factory=Counter)


def helpers_wanted() -> int:
    return max(0, int(getattr(settings, "ATLAS_PROMOTION_HELPERS", 0)))


def lease_seconds() -> float:
    return float(getattr(settings, "ATLAS_PROMOTION_CHUNK_LEASE_SECONDS", 120))


def claimant_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


# --- Claiming -----------------------------------------------------------------------------

_RANGE = f"""
    SELECT id, payload::text, parse_error FROM {sql_table(RawRecord)}
     WHERE dataset_id = %s AND id > %s AND id <= %s
     ORDER BY id
"""


def read_range(*, dataset_id: int, after_id: int, last_id: int) -> list[RawRow]:
    """The raw records of a chunk claimed again, as chart.chunks reads them."""
    with connection.cursor() as cursor:
        cursor.execute(_RANGE, [dataset_id, after_id, last_id])
        return cursor.fetchall()


def claim_chunk(
    *, run: Run, reader: ChunkReader, claimant: str, below_seq: int | None = None
) -> ClaimedChunk | None:
    """A chunk of `run` for `claimant`: one whose lease ran out, else the next records.

    With `below_seq`, only a chunk before that one whose lease ran out (its claimant
    holds up the commits of everyone after it). None: nothing to claim now.
    """
    lease = timezone.now() + timedelta(seconds=lease_seconds())
    with transaction.atomic():
        expired = (
            RunChunk.objects.select_for_update(skip_locked=True)
            .filter(run=run, status=ChunkStatus.CLAIMED, lease_until__lt=timezone.now())
            .order_by("seq")
        )
        if below_seq is not None:
            expired = expired.filter(seq__lt=below_seq)
        stale = expired.first()
        if stale is not None:
            if stale.attempts >= CHUNK_ATTEMPTS:
                raise ChunkKeepsFailingError(
                    f"the raw records with ids {stale.after_id + 1} to {stale.last_id} were "
                    f"claimed {stale.attempts} times and never committed: judging them kills "
                    "or hangs their worker"
                )
            RunChunk.objects.filter(pk=stale.pk).update(
                claimant=claimant, lease_until=lease, attempts=stale.attempts + 1
            )
            logger.info(
                "promotion run %s: chunk %s (raw ids %s-%s) claimed again by %s, attempt %s",
                run.pk,
                stale.seq,
                stale.after_id + 1,
                stale.last_id,
                claimant,
                stale.attempts + 1,
            )
            raws = read_range(
                dataset_id=run.dataset_id, after_id=stale.after_id, last_id=stale.last_id
            )
            return ClaimedChunk(stale.pk, stale.seq, stale.after_id, stale.last_id, raws)
        if below_seq is not None:
            return None
        # One reader of the next chunk at a time: chunks stay contiguous and in order.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [advisory_locks.PROMOTION_CHUNKS, run.pk]
            )
        last = RunChunk.objects.filter(run=run).order_by("-seq").only("seq", "last_id").first()
        if last is not None:
            seq, after_id = last.seq + 1, last.last_id
        else:
            watermark = Watermark.objects.filter(dataset_id=run.dataset_id, layer=Layer.CHART)
            seq, after_id = 0, (watermark.values_list("position", flat=True).first() or 0)
        raws = reader.read(after_id=after_id)
        if not raws:
            return None
        chunk = RunChunk.objects.create(
            run=run,
            seq=seq,
            after_id=after_id,
            last_id=raws[-1][0],
            rows=len(raws),
            claimant=claimant,
            lease_until=lease,
        )
        return ClaimedChunk(chunk.pk, seq, after_id, chunk.last_id, raws)


def renew_leases(chunks: list[ClaimedChunk], claimant: str) -> None:
    """The chunks this worker holds stay its own while it waits for their turn."""
    if chunks:
        RunChunk.objects.filter(
            pk__in=[chunk.pk for chunk in chunks], claimant=claimant, status=ChunkStatus.CLAIMED
        ).update(lease_until=timezone.now() + timedelta(seconds=lease_seconds()))


def unfinished(run: Run) -> bool:
    """Whether a chunk of the run is claimed and not committed yet."""
    return RunChunk.objects.filter(run=run, status=ChunkStatus.CLAIMED).exists()


# --- Committing ---------------------------------------------------------------------------


def commit_chunk(
    *,
    dataset: Dataset,
    run: Run,
    chunk: ClaimedChunk,
    rule_book: RuleBook,
    unique_fields: list[str],
    claimant: str,
) -> str:
    """Write a judged chunk if it is its turn; what happened (COMMITTED, NOT_YET, ...)."""
    assert chunk.judged is not None
    with transaction.atomic():
        # The watermark row orders every chunk's commit, as it does a one-worker run's.
        watermark, _ = Watermark.objects.select_for_update().get_or_create(
            dataset=dataset, layer=Layer.CHART
        )
        if watermark.position >= chunk.last_id:
            return DONE_ELSEWHERE
        if watermark.position != chunk.after_id:
            if watermark.position > chunk.after_id:  # never: chunks are contiguous
                raise RuntimeError(
                    f"chart watermark of {dataset.slug} stands at {watermark.position}, "
                    f"inside chunk {chunk.seq} ({chunk.after_id}, {chunk.last_id}] of run {run.pk}"
                )
            return NOT_YET
        # Locked until this commit ends: a run failed as interrupted (by the next
        # promotion or a re-processing) waits for it, and is seen failed by the next.
        status = Run.objects.select_for_update().filter(pk=run.pk).values_list("status").first()
        if status is None or status[0] != RunStatus.RUNNING:
            return RUN_ENDED
        if not advisory_locks.is_held(advisory_locks.RUN, run.pk):
            return NO_OWNER
        result = write_range(
            dataset=dataset,
            run=run,
            watermark=watermark,
            first_raw_id=chunk.after_id + 1,
            last_raw_id=chunk.last_id,
            judged=chunk.judged,
            rule_book=rule_book,
            unique_fields=unique_fields,
        )
        RunChunk.objects.filter(pk=chunk.pk).update(
            status=ChunkStatus.DONE,
            committed_by=claimant,
            committed_at=timezone.now(),
            result=_summary(result),
        )
    return COMMITTED


def _summary(result: ChunkResult) -> dict:
    return {
        "superseded": result.superseded,
        "failing": result.failing,
        "pii": [[name, kind, count] for (name, kind), count in result.pii_by_field.items()],
        "expected_pii": [
            [name, kind, count] for (name, kind), count in result.expected_pii.items()
        ],
    }


def shared_totals(run: Run) -> SharedTotals:
    totals = SharedTotals()
    for summary in RunChunk.objects.filter(run=run, status=ChunkStatus.DONE).values_list(
        "result", flat=True
    ):
        totals.chunks += 1
        totals.superseded += summary.get("superseded", 0)
        totals.failing += summary.get("failing", 0)
        for name, kind, count in summary.get("pii", []):
            totals.pii_by_field[(name, kind)] += count
        for name, kind, count in summary.get("expected_pii", []):
            totals.expected_pii[(name, kind)] += count
    return totals


# --- The loop every worker runs -----------------------------------------------------------


def judge(evaluator: RecordEvaluator, raws: list[RawRow]) -> JudgedChunk:
    # As in the evaluation pool's workers: the cycle collector's passes over a chunk's
    # young objects cost a tenth of judging; one pass after the chunk frees its cycles.
    gc.disable()
    try:
        return evaluator.judge(raws)
    finally:
        gc.enable()
        gc.collect(0)


def work_on_chunks(
    *,
    dataset: Dataset,
    run: Run,
    evaluator: RecordEvaluator,
    rule_book: RuleBook,
    unique_fields: list[str],
    chunk_size: int,
    chunk_bytes: int,
    owner: bool,
) -> int:
    """Claim, judge and commit chunks of `run` until none is left; returns those committed here.

    The owner returns once every chunk is committed and nothing more is there to read. A
    helper also returns when the run ends, or when the run has had no owner for a lease's
    time (its worker is then free to take up the run's task, sent again by the watchdog).
    """
    claimant = claimant_name()
    reader = ChunkReader(dataset_id=dataset.pk, chunk_size=chunk_size, chunk_bytes=chunk_bytes)
    held: list[ClaimedChunk] = []  # judged, in seq order, each waiting for its turn
    committed = judged = 0
    waited = 0.0  # seconds with nothing to judge or commit: the cost of sharing
    started = time.monotonic()
    ownerless_since: float | None = None
    gc.freeze()  # as in the evaluation pool: the collector walks only what the run makes
    try:
        while True:
            waiting_for_owner = False
            while held:
                outcome = commit_chunk(
                    dataset=dataset,
                    run=run,
                    chunk=held[0],
                    rule_book=rule_book,
                    unique_fields=unique_fields,
                    claimant=claimant,
                )
                if outcome == COMMITTED:
                    committed += 1
                elif outcome == RUN_ENDED:
                    return committed
                elif outcome == NO_OWNER:
                    waiting_for_owner = True
                    break
                elif outcome == NOT_YET:
                    break
                held.pop(0)  # committed, here or by another claimant
            if waiting_for_owner:
                ownerless_since = ownerless_since or time.monotonic()
                if not owner and time.monotonic() - ownerless_since > lease_seconds():
                    return committed
            else:
                ownerless_since = None
            if len(held) < HELD_AHEAD:
                chunk = claim_chunk(run=run, reader=reader, claimant=claimant)
            else:  # full: only a stalled chunk before ours, which holds everyone up
                chunk = claim_chunk(
                    run=run, reader=reader, claimant=claimant, below_seq=held[0].seq
                )
            if chunk is not None:
                chunk.judged = judge(evaluator, chunk.raws)
                chunk.raws = []
                judged += 1
                held.append(chunk)
                held.sort(key=lambda each: each.seq)
                continue
            if not held and not unfinished(run):
                return committed
            renew_leases(held, claimant)
            time.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
    finally:
        gc.unfreeze()
        _release(run, claimant)
        logger.info(
            "promotion run %s: %s judged %s chunk(s) and committed %s in %.1f s, of which "
            "%.1f s waiting for a chunk's turn or for work",
            run.pk,
            claimant,
            judged,
            committed,
            time.monotonic() - started,
            waited,
        )


def _release(run: Run, claimant: str) -> None:
    """Chunks this worker claimed and leaves uncommitted are anyone's at once."""
    try:
        RunChunk.objects.filter(run=run, claimant=claimant, status=ChunkStatus.CLAIMED).update(
            lease_until=timezone.now()
        )
    except Exception:  # the database is away: their leases run out by themselves
        logger.warning("promotion run %s: could not release the chunks of %s", run.pk, claimant)
