"""A promotion shared by two real workers, each SIGKILLed once mid-run (chart.shared_promotion).

Two `celery worker` processes with different node names (solo pool, one judging process
each: ATLAS_PROMOTION_WORKERS=1) share one dataset's promotion of many chunks. The owner
is killed, replaced by a new worker process, then the other original worker is killed
and replaced too. Every record must land once, and chart and quarantine must be exactly
what a one-worker promotion of the same records makes.
"""

import time
import uuid

import pytest

from atlas_site.testing.celery_worker import spawn_worker
from chart import services
from chart.tests.test_shared_promotion import make_dataset, outcome, records, run_counts
from explore.models import RawRecord
from governance.pipeline.models import ChunkStatus, Layer, Run, RunChunk, RunStatus, Watermark
from governance.pipeline.services import request_promotion

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECORDS = 10_000
CHUNK = 100
ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)


def progress(dataset, last_raw_id: int, first_raw_id: int) -> float:
    watermark = Watermark.objects.filter(dataset=dataset, layer=Layer.CHART).first()
    position = watermark.position if watermark else 0
    return max(0.0, (position - first_raw_id) / (last_raw_id - first_raw_id))


def wait_for(condition, what: str, workers, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n\n".join(f"{w.log_path}:\n{w.log[-3000:]}" for w in workers)
            pytest.fail(f"{what} within {timeout} s\n{logs}")
        time.sleep(0.05)


def test_two_workers_share_a_promotion_each_killed_once(land, settings, tmp_path):
    data = records(RECORDS)
    alone, shared = make_dataset("alone"), make_dataset("shared")
    land(alone, data)
    raws = land(shared, data)
    first_raw_id, last_raw_id = min(r.pk for r in raws), max(r.pk for r in raws)

    queue = f"atlas-shared-promotion-{uuid.uuid4().hex[:8]}"
    settings.ATLAS_PROMOTION_QUEUE = queue
    settings.ATLAS_PROMOTION_HELPERS = 1
    env = {
        "ATLAS_PROMOTION_QUEUE": queue,
        "ATLAS_PROMOTION_WORKERS": "1",  # no fork pool: one core per worker process
        "ATLAS_PROMOTION_HELPERS": "1",
        "ATLAS_PROMOTION_CHUNK_SIZE": str(CHUNK),
        "ATLAS_PROMOTION_CHUNK_LEASE_SECONDS": "3",
        "ATLAS_WATCHDOG_SECONDS": "1",  # a killed owner's run is sent again within a second
    }
    workers = []

    def start(name: str):
        worker = spawn_worker(
            queue=queue, log_path=tmp_path / f"{name}.log", extra_env=env, name=name
        )
        workers.append(worker)
        return worker

    try:
        a, b = start("share-a"), start("share-b")
        a.wait_ready()
        b.wait_ready()
        run = request_promotion(dataset=shared, triggered_by="test", to_layer=Layer.CHART)
        wait_for(
            lambda: progress(shared, last_raw_id, first_raw_id) > 0.15,
            "15% committed",
            workers,
        )
        # The run's owner first: its helper must wait for the watchdog to send the run's
        # task again, and the new owner goes on with the run's chunks.
        owner, other = (a, b) if "tasks.promote_to_chart[" in a.log else (b, a)
        assert "tasks.help_promote_to_chart[" in other.log, other.log[-3000:]
        owner.kill()
        start(f"{'share-a' if owner is a else 'share-b'}-again")
        wait_for(
            lambda: progress(shared, last_raw_id, first_raw_id) > 0.55,
            "55% committed",
            workers,
        )
        other.kill()
        start(f"{'share-a' if other is a else 'share-b'}-again")
        wait_for(lambda: Run.objects.get(pk=run.pk).status in ENDED, "the run ended", workers, 90)
    finally:
        for worker in workers:
            worker.kill()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    chunks = RunChunk.objects.filter(run=run)
    assert not chunks.exclude(status=ChunkStatus.DONE).exists()
    # Every chunk once, contiguous over every raw record, committed by more than one worker.
    ranges = list(chunks.order_by("seq").values_list("after_id", "last_id"))
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert ranges[-1][1] == last_raw_id
    assert len(set(chunks.values_list("committed_by", flat=True))) >= 3
    assert run.rows_in == RawRecord.objects.filter(dataset=shared).count() == RECORDS

    one = services.promote_to_chart(dataset=alone, triggered_by="test", chunk_size=CHUNK, helpers=0)
    assert run_counts(run)[1:] == run_counts(one)[1:]
    assert outcome(shared) == outcome(alone)
