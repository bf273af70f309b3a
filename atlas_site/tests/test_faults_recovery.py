"""Recovery in seconds: a worker's whole process tree SIGKILLed mid-load or mid-promotion,
another worker available, with and without beat: how long until the work resumes.

Before, such work waited for beat's tick to see it stalled (52-69 s, at most once per
item per 10 minutes) or, without beat, for Redis to hand the unacknowledged message
back after its visibility timeout (an hour). Now every worker's watchdog
(orchestration.watchdog, every ATLAS_WATCHDOG_SECONDS = 5) sees the work's owner
gone (its lock freed with its session) and sends the task again at once. The goal is 30
s; these tests fail only past 90 s, so a slow machine cannot make them flaky, and print
what they measured ("resumed": a delivery in the surviving worker owns the work again;
"done": the load or promotion finished).

The workers keep the default visibility timeout (an hour): nothing here comes back
from Redis. The killed work is held at a known point by an ordinary lock, released right
after the kill: a load with every line copied and its transaction open
(atlas_site.testing.load_gate), a promotion with its first chunk judged and waiting
for the chart watermark's row.
"""

import io
import os
import signal
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.files.storage import default_storage
from django.db import connection, transaction

from atlas_site import advisory_locks, ownership
from atlas_site.testing.celery_worker import database_url, spawn_beat, spawn_worker
from atlas_site.testing.load_gate import load_gate
from chart.models import ChartRecord, QuarantinedRecord
from explore import services as explore_services
from explore.models import BatchStatus, LandingBatch, RawRecord
from governance.pipeline.models import Layer, Run, RunKind, RunStatus, Watermark
from governance.pipeline.services import request_promotion

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

GOAL_SECONDS = 30
FAIL_PAST_SECONDS = 90
ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
# Production's watchdog period (the test harness turns it off by default).
RECOVERY_ENV = {"ATLAS_WATCHDOG_SECONDS": "5", "ATLAS_PROMOTION_WORKERS": "2"}


def new_queue(name: str) -> str:
    return f"atlas-recovery-{name}-{uuid.uuid4().hex[:8]}"


def wait_for(condition, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.log_path.name}\n{w.log[-3000:]}" for w in logs)
            pytest.fail(f"{what} within {timeout} s\n{tails}")
        time.sleep(0.05)
    return found


class Cluster:
    """Two workers on one queue (and beat, when asked), started together."""

    def __init__(self, queue: str, tmp_path: Path, env: dict[str, str], beat: bool):
        self.workers = [
            spawn_worker(
                queue=queue,
                log_path=tmp_path / f"{name}.log",
                extra_env=env,
                pool="prefork",
                concurrency=1,
                name=name,
            )
            for name in ("one", "two")
        ]
        self.beat = spawn_beat(queue=queue, log_path=tmp_path / "beat.log") if beat else None

    @property
    def processes(self):
        return [*self.workers, *([self.beat] if self.beat else [])]

    def wait_ready(self) -> None:
        for process in self.processes:
            process.wait_ready()

    def worker_of(self, pid: int):
        """The worker whose process tree `pid` belongs to (its own process group)."""
        group = os.getpgid(pid)
        [worker] = [w for w in self.workers if w.pid == group]
        return worker

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def owner_pid(namespace: int, key: int) -> int | None:
    beat = ownership.heartbeat_of(namespace, key)
    return beat["pid"] if beat else None


def owned_by(namespace: int, key: int, worker) -> bool:
    pid = owner_pid(namespace, key)
    try:
        return pid is not None and os.getpgid(pid) == worker.pid
    except ProcessLookupError:
        return False


def report(what: str, resumed: float, done: float) -> None:
    print(
        f"\n[recovery] {what}: resumed {resumed:.1f} s after the SIGKILL, "
        f"done after {done:.1f} s (goal {GOAL_SECONDS} s, fails past {FAIL_PAST_SECONDS} s)"
    )


# --- Mid-load ----------------------------------------------------------------------------

LINES = 3000


@pytest.mark.parametrize("beat", [False, True], ids=["without-beat", "with-beat"])
def test_a_load_whose_worker_is_killed_resumes_on_another_worker(
    customers, settings, tmp_path, beat
):
    queue = new_queue("load")
    settings.ATLAS_INGEST_QUEUE = queue
    env = {**RECOVERY_ENV, "ATLAS_INGEST_QUEUE": queue, "ATLAS_INGEST_STATEMENT_ROWS": "500"}
    content = b"id,email,tier\n" + b"".join(
        b"%d,user%d@example.com,gold\n" % (number, number) for number in range(LINES)
    )
    cluster = Cluster(queue, tmp_path, env, beat)
    batch = None
    try:
        cluster.wait_ready()
        with load_gate(database_url(connection.settings_dict["NAME"]), customers.pk) as held:
            with transaction.atomic():
                batch = explore_services.store_upload(
                    dataset=customers, file=io.BytesIO(content), filename="c.csv", actor="t"
                )
            assert held.hold_before_commit() == batch.pk  # every line copied, not committed
            killed = cluster.worker_of(owner_pid(advisory_locks.LOAD_BATCH, batch.pk))
            [survivor] = [w for w in cluster.workers if w is not killed]
            killed.kill()  # the whole process tree: SIGKILL to its process group
            killed_at = time.monotonic()
            held.release()

        wait_for(
            lambda: (
                owned_by(advisory_locks.LOAD_BATCH, batch.pk, survivor)
                or LandingBatch.objects.get(pk=batch.pk).status != BatchStatus.LOADING
            ),
            FAIL_PAST_SECONDS,
            "the load was not taken up again",
            cluster.processes,
        )
        resumed = time.monotonic() - killed_at
        wait_for(
            lambda: LandingBatch.objects.get(pk=batch.pk).status != BatchStatus.LOADING,
            FAIL_PAST_SECONDS,
            "the load did not finish",
            cluster.processes,
        )
        done = time.monotonic() - killed_at
    finally:
        cluster.stop()
        if batch is not None:
            default_storage.delete(LandingBatch.objects.get(pk=batch.pk).file.name)

    report(f"load, {'with' if beat else 'without'} beat", resumed, done)
    assert resumed < FAIL_PAST_SECONDS
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LOADED, batch.error
    lines = RawRecord.objects.filter(batch=batch)
    assert lines.count() == LINES == lines.values("line_number").distinct().count()
    runs = Run.objects.filter(kind=RunKind.INGEST).order_by("pk")
    assert [run.status for run in runs] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert runs[0].error.startswith("interrupted")
    assert "resent" in runs[1].triggered_by


# --- Mid-promotion -------------------------------------------------------------------------

RECORDS = 3000


def customer(number: int) -> dict:
    return {
        "id": str(number),
        "email": f"user{number}@example.com",
        "tier": "bronze" if number % 10 == 0 else "gold",  # every tenth is quarantined
        "amount": "2.50",
        "ssn": "123-45-6789",
        "signup": "2026-01-02",
        "notes": "",
    }


class WatermarkGate:
    """A reader's row lock on the dataset's chart watermark: a promotion judges its first
    chunk, then waits to write it, its run 'running' and its locks held."""

    def __init__(self, dataset):
        watermark, _ = Watermark.objects.get_or_create(dataset=dataset, layer=Layer.CHART)
        url = database_url(connection.settings_dict["NAME"])
        self.connection = psycopg.connect(url)
        # Autocommit: pg_stat_activity is read once per transaction.
        self.observer = psycopg.connect(url, autocommit=True)
        self.connection.execute(
            'SELECT 1 FROM "pipeline"."watermark" WHERE id = %s FOR UPDATE', [watermark.pk]
        )

    def waited_on(self) -> bool:
        return bool(
            self.observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [self.connection.info.backend_pid],
            ).fetchone()[0]
        )

    def release(self) -> None:
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()
        self.observer.close()


def assert_each_raw_record_once(dataset) -> None:
    raw_ids = sorted(RawRecord.objects.filter(dataset=dataset).values_list("id", flat=True))
    promoted = list(
        ChartRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    held = list(
        QuarantinedRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    assert sorted(promoted + held) == raw_ids


@pytest.mark.parametrize("beat", [False, True], ids=["without-beat", "with-beat"])
def test_a_promotion_whose_worker_is_killed_resumes_on_another_worker(
    customers, land, settings, tmp_path, beat
):
    land(customers, [customer(number) for number in range(1, RECORDS + 1)])
    queue = new_queue("promote")
    settings.ATLAS_PROMOTION_QUEUE = queue
    env = {**RECOVERY_ENV, "ATLAS_PROMOTION_QUEUE": queue, "ATLAS_PROMOTION_CHUNK_SIZE": "500"}
    cluster = Cluster(queue, tmp_path, env, beat)
    gate = WatermarkGate(customers)
    try:
        cluster.wait_ready()
        run = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
        wait_for(
            gate.waited_on, 60, "the promotion did not reach its first write", cluster.processes
        )
        assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
        killed = cluster.worker_of(owner_pid(advisory_locks.RUN, run.pk))
        [survivor] = [w for w in cluster.workers if w is not killed]
        killed.kill()  # the worker, its pool process and the evaluation processes
        killed_at = time.monotonic()
        gate.release()

        wait_for(
            lambda: (
                owned_by(advisory_locks.RUN, run.pk, survivor)
                or Run.objects.get(pk=run.pk).status in ENDED
            ),
            FAIL_PAST_SECONDS,
            "the promotion was not taken up again",
            cluster.processes,
        )
        resumed = time.monotonic() - killed_at
        wait_for(
            lambda: Run.objects.get(pk=run.pk).status in ENDED,
            FAIL_PAST_SECONDS,
            "the promotion did not finish",
            cluster.processes,
        )
        done = time.monotonic() - killed_at
    finally:
        gate.close()
        cluster.stop()

    report(f"promotion, {'with' if beat else 'without'} beat", resumed, done)
    assert resumed < FAIL_PAST_SECONDS
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == RECORDS == run.rows_promoted + run.rows_quarantined
    assert run.rows_quarantined == RECORDS // 10
    assert Run.objects.filter(dataset=customers).count() == 1
    assert_each_raw_record_once(customers)


# --- A worker starting up -----------------------------------------------------------------


def test_a_worker_starting_up_takes_up_work_whose_owner_died(customers, land, settings, tmp_path):
    """No other worker was there when the owner died: the next one to start takes it up."""
    land(customers, [customer(number) for number in range(1, 1001)])
    queue = new_queue("startup")
    settings.ATLAS_PROMOTION_QUEUE = queue
    env = {**RECOVERY_ENV, "ATLAS_PROMOTION_QUEUE": queue, "ATLAS_PROMOTION_CHUNK_SIZE": "200"}
    gate = WatermarkGate(customers)
    first = spawn_worker(
        queue=queue, log_path=tmp_path / "first.log", extra_env=env, pool="prefork", name="first"
    )
    later = None
    try:
        first.wait_ready()
        run = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
        wait_for(gate.waited_on, 60, "the promotion did not reach its first write", [first])
        first.kill()
        gate.release()
        wait_for(
            lambda: not advisory_locks.is_held(advisory_locks.RUN, run.pk),
            30,
            "the killed worker's session did not end",
        )

        later = spawn_worker(
            queue=queue,
            log_path=tmp_path / "later.log",
            extra_env=env,
            pool="prefork",
            name="later",
        )
        later.wait_ready()
        ready_at = time.monotonic()
        wait_for(
            lambda: Run.objects.get(pk=run.pk).status in ENDED,
            FAIL_PAST_SECONDS,
            "the new worker did not take the promotion up",
            [later],
        )
        done = time.monotonic() - ready_at
    finally:
        gate.close()
        first.kill()
        if later is not None:
            later.stop()

    print(f"\n[recovery] promotion taken up by a worker starting: done {done:.1f} s after ready")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == 1000
    assert_each_raw_record_once(customers)


# --- The promoting process killed alone (the OOM killer's choice) ---------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_killed_promoting_process_leaves_no_process_or_session_behind(
    customers, land, settings, tmp_path
):
    """SIGKILL of the pool process running the promotion, not of its worker: its
    evaluation processes die with it and hold none of its sockets, so its database
    session ends (while it waits on a lock) and its locks go with it; the promotion is
    taken up again."""
    land(customers, [customer(number) for number in range(1, 1001)])
    queue = new_queue("oom")
    settings.ATLAS_PROMOTION_QUEUE = queue
    env = {
        **RECOVERY_ENV,
        "ATLAS_PROMOTION_QUEUE": queue,
        "ATLAS_PROMOTION_CHUNK_SIZE": "200",
        "ATLAS_DB_CLIENT_CHECK_INTERVAL": "1s",
    }
    gate = WatermarkGate(customers)
    worker = spawn_worker(
        queue=queue, log_path=tmp_path / "worker.log", extra_env=env, pool="prefork", name="w"
    )
    try:
        worker.wait_ready()
        run = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
        wait_for(gate.waited_on, 60, "the promotion did not reach its first write", [worker])
        promoting = owner_pid(advisory_locks.RUN, run.pk)
        assert promoting != worker.pid  # a pool process of the worker
        evaluators = children_of(promoting)
        assert len(evaluators) == 2
        backend = advisory_locks.holders(advisory_locks.RUN, [run.pk])[run.pk]

        os.kill(promoting, signal.SIGKILL)
        wait_for(
            lambda: not any(alive(pid) for pid in evaluators),
            10,
            "the evaluation processes outlived the promoting process",
        )
        # The gate still holds the row its session waits for: only its client check
        # (no process keeps its socket open now) ends it, and frees the run's locks.
        wait_for(
            lambda: backend not in advisory_locks.holders(advisory_locks.RUN, [run.pk]).values(),
            15,
            "the dead promotion's session still holds the run's lock",
        )
        assert not advisory_locks.is_held(advisory_locks.PROMOTE_CHART, customers.pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend])
            assert cursor.fetchone() is None
        gate.release()
        wait_for(
            lambda: Run.objects.get(pk=run.pk).status in ENDED,
            FAIL_PAST_SECONDS,
            "the promotion was not taken up again",
            [worker],
        )
    finally:
        gate.close()
        worker.stop()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.rows_in == 1000
    assert_each_raw_record_once(customers)
