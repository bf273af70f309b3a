"""Faults: Redis, then PostgreSQL, stopped while work is queued and in flight.

The suite's shared servers are never stopped: each test runs a private redis-server and
a private PostgreSQL cluster (atlas_site.testing.services) holding a copy of the test
database, a real Celery worker against them, and the producers (the same services the
admin, the API and `manage.py ingest` call) in subprocesses with the same settings.
/readyz and /statusz are asked through Django's test client in such a subprocess too. The load "in
flight" is held with its rows copied and its transaction open by
atlas_site.testing.load_gate, so the outage never races a load that a fast machine
finishes in a fraction of a second.
"""

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from atlas_site.testing.celery_worker import WORKER_SETTINGS, database_url, spawn_worker
from atlas_site.testing.load_gate import load_gate
from atlas_site.testing.services import private_postgres, private_redis
from explore.models import BatchStatus, LandingBatch
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from orchestration import dispatch
from orchestration.recovery import STALLED_AFTER, resend_stalled_work

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ENDED = ("succeeded", "failed", "skipped")


class Stack:
    """Private Redis and PostgreSQL, and the environment of processes that use them."""

    def __init__(self, redis, postgres, queue: str):
        self.redis = redis
        self.postgres = postgres
        self.queue = queue
        self.env = {
            "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
            "DATABASE_URL": postgres.url("atlas"),
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": redis.url(0),
            "ATLAS_INGEST_QUEUE": queue,
            "ATLAS_PROMOTION_QUEUE": queue,
            "ATLAS_PROMOTION_WORKERS": "1",
            "ATLAS_PROMOTION_CHUNK_SIZE": "500",
            # Redis hands back a message whose worker lost its connection once it is
            # this old; the restore sweep runs every second (worker_settings).
            "CELERY_BROKER_VISIBILITY_TIMEOUT": "8",
        }

    def python(self, code: str, timeout: float = 60) -> str:
        """Run `code` in `manage.py shell` with this stack's settings; return its output."""
        import os

        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=django_settings.BASE_DIR,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.postgres.url("atlas"), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def worker(self, tmp_path, name: str):
        worker = spawn_worker(
            queue=self.queue, log_path=tmp_path / f"{name}.log", extra_env=self.env, name=name
        )
        worker.wait_ready()
        return worker


STORE = """
import io
from explore.services import store_upload
from governance.pipeline.models import Dataset
dataset = Dataset.objects.get(slug="orders")
for name, lines in {files!r}.items():
    content = b"id,email,tier,amount\\n" + b"".join(
        b"%d,user%d@example.com,gold,%d.50\\n" % (n, n, n % 90) for n in range(lines)
    )
    batch = store_upload(dataset=dataset, file=io.BytesIO(content), filename=name, actor="cli")
    print(batch.pk)
"""

PROBE = """
import json
from django.test import Client
response = Client(HTTP_HOST="localhost").get({path!r})
print(json.dumps({{**response.json(), "http_status": response.status_code}}))
"""


def store_files(stack: Stack, files: dict[str, int]) -> dict[int, int]:
    """Store files (name -> lines) as `manage.py ingest` does; return batch id -> lines."""
    ids = [int(line) for line in stack.python(STORE.format(files=files)).split()]
    return dict(zip(ids, files.values(), strict=True))


def probe(stack: Stack, path: str) -> dict:
    """/readyz (the web replica's database and cache) or /statusz (broker, workers...)."""
    return json.loads(stack.python(PROBE.format(path=path)).strip().splitlines()[-1])


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s\n{log()[-5000:]}"
        time.sleep(0.1)
    return found


def wait_for_batch(stack: Stack, pk: int, status: str, timeout: float, what: str, worker):
    wait_for(lambda: batch_statuses(stack)[pk] == status, timeout, what, lambda: worker.log)


def batch_statuses(stack: Stack) -> dict[int, str]:
    return dict(stack.sql("SELECT id, status FROM explore.landing_batch"))


def assert_each_line_once(stack: Stack, batches: dict[int, int]) -> int:
    """Every batch loaded with each of its lines exactly once; returns the rows checked."""
    for batch_id, lines in batches.items():
        [(status, rows_total, error)] = stack.sql(
            "SELECT status, rows_total, error FROM explore.landing_batch WHERE id = %s",
            [batch_id],
        )
        assert (status, rows_total) == ("loaded", lines), error
        [(count, distinct)] = stack.sql(
            "SELECT count(*), count(DISTINCT line_number) FROM explore.raw_record "
            "WHERE batch_id = %s",
            [batch_id],
        )
        assert count == distinct == lines
    return sum(batches.values())


@pytest.fixture
def stack(dataset, tmp_path):
    """Private servers; the PostgreSQL one holds a copy of the test database (with `dataset`)."""
    with private_redis(tmp_path / "redis") as redis, private_postgres() as postgres:
        postgres.copy_database(
            from_url=database_url(connection.settings_dict["NAME"]), name="atlas"
        )
        yield Stack(redis, postgres, f"atlas-outage-{uuid.uuid4().hex[:8]}")


def test_redis_stopped_with_work_queued_and_in_flight_loses_nothing(stack, dataset, tmp_path):
    stack.sql("UPDATE pipeline.dataset SET auto_promote = false")
    worker = stack.worker(tmp_path, "worker")
    try:
        with load_gate(stack.postgres.url("atlas"), dataset.pk) as gate:
            # In flight: a load held before its commit; queued: two more behind it (a
            # solo worker).
            batches = store_files(stack, {"big.csv": 6_000, "one.csv": 300, "two.csv": 400})
            big = gate.hold_before_commit()
            assert big == min(batches)
            stack.redis.stop()

            # Received while Redis is down: stored, its load not sent; the request works.
            batches |= store_files(stack, {"three.csv": 500})
            down = probe(stack, "/statusz")
            assert down["http_status"] == 503 and "broker" in down["failing"]
            # Redis is also the cache: the web replica says so; its database is fine.
            down = probe(stack, "/readyz")
            assert down["failing"] == ["cache"]
            assert batch_statuses(stack)[big] == "loading"
            gate.release()

        # The load in flight commits: the database does not need Redis.
        wait_for(
            lambda: batch_statuses(stack)[big] == "loaded",
            90,
            "the load did not end",
            lambda: worker.log,
        )
        time.sleep(2)  # the worker keeps trying to reconnect
        assert worker.alive()
        stack.redis.start()

        # The queued loads resume; the one never sent waits for the tick to send it again.
        queued = [pk for pk in batches if pk != max(batches)]
        wait_for(
            lambda: all(batch_statuses(stack)[pk] == "loaded" for pk in queued),
            90,
            "the queued loads did not resume",
            lambda: worker.log,
        )
        assert batch_statuses(stack)[max(batches)] == "stored"
        later = (timezone.now() + STALLED_AFTER + timedelta(minutes=1)).isoformat()
        resent = stack.python(
            "from datetime import datetime\n"
            "from orchestration.recovery import tick\n"
            f"tick(now=datetime.fromisoformat({later!r}))\n"
        )
        assert "Traceback" not in resent
        wait_for(
            lambda: batch_statuses(stack)[max(batches)] == "loaded",
            60,
            "the stalled load was not sent again",
            lambda: worker.log,
        )
        up = probe(stack, "/statusz")
        ready = probe(stack, "/readyz")
    finally:
        worker.stop()

    rows = assert_each_line_once(stack, batches)
    runs = stack.sql("SELECT status, error FROM pipeline.run WHERE kind = 'ingest'")
    assert [status for status, _ in runs] == ["succeeded"] * len(batches), runs
    assert up["components"]["broker"]["ok"] and up["components"]["worker"]["ok"], up
    assert ready["http_status"] == 200, ready
    print(f"\nredis outage: {len(batches)} batches, {rows} rows checked, none lost or doubled")


def test_postgres_stopped_with_work_queued_and_in_flight_loses_nothing(stack, dataset, tmp_path):
    # auto_promote: each load asks for explore → chart → navigate on the same worker.
    batches = store_files(stack, {"big.csv": 6_000, "one.csv": 300, "two.csv": 400})
    worker = None
    try:
        with load_gate(stack.postgres.url("atlas"), dataset.pk) as gate:
            worker = stack.worker(tmp_path, "worker")  # the loads are queued; it takes them
            # In flight: a load held with its rows copied and its transaction open.
            gate.hold_before_commit()
            stack.postgres.stop()  # 'fast': sessions cut, their transactions rolled back
        down = probe(stack, "/readyz")
        assert down["http_status"] == 503 and down["failing"] == ["database"]
        assert probe(stack, "/statusz")["components"]["broker"]["ok"]
        time.sleep(3)  # the worker's tasks fail to connect and retry
        assert worker.alive()
        stack.postgres.start()

        def all_done() -> bool:
            statuses = batch_statuses(stack)
            runs = stack.sql("SELECT status FROM pipeline.run")
            return all(s == "loaded" for s in statuses.values()) and all(
                status in ENDED for (status,) in runs
            )

        wait_for(all_done, 180, "the work did not resume", lambda: worker.log)
        # The last promotion's navigate run is queued by the chart run: wait for it.
        time.sleep(1)
        wait_for(all_done, 60, "the work did not end", lambda: worker.log)
    finally:
        if worker is not None:
            worker.stop()

    rows = assert_each_line_once(stack, batches)
    # Every raw record is in chart or in quarantine exactly once.
    [(raw, charted, quarantined, both)] = stack.sql(
        "SELECT (SELECT count(*) FROM explore.raw_record), "
        "(SELECT count(DISTINCT raw_record_id) FROM chart.chart_record), "
        "(SELECT count(DISTINCT raw_record_id) FROM chart.quarantined_record), "
        "(SELECT count(*) FROM chart.chart_record c JOIN chart.quarantined_record q "
        "USING (raw_record_id))"
    )
    [(chart_rows,)] = stack.sql("SELECT count(*) FROM chart.chart_record")
    assert raw == rows == charted + quarantined and both == 0 and chart_rows == charted
    runs = stack.sql("SELECT kind, status, error FROM pipeline.run ORDER BY id")
    for _kind, status, error in runs:
        # A run cut short by the outage is failed as interrupted by the one that took over.
        assert status in ("succeeded", "skipped") or error.startswith("interrupted"), runs
    assert [k for k, s, _ in runs if k == "ingest" and s == "succeeded"] == ["ingest"] * 3
    print(f"\npostgres outage: {len(batches)} batches, {rows} rows checked, none lost or doubled")


# --- Redis restarted under a busy worker ----------------------------------------------------

STORE_DELAYED = """
import io
from unittest import mock
from django.conf import settings
from explore import services
from explore.tasks import load_batch
from governance.pipeline.models import Dataset
content = b"id,email,tier,amount\\n" + b"".join(
    b"%d,user%d@example.com,gold,%d.50\\n" % (n, n, n % 90) for n in range({lines})
)
batch = services.store_upload(  # stored; its load is sent below
    dataset=Dataset.objects.get(slug="orders"), file=io.BytesIO(content),
    filename={name!r}, actor="cli", queue=False,
)
load_batch.apply_async(
    (batch.pk, "upload"), countdown={countdown}, queue=settings.ATLAS_INGEST_QUEUE
)
print(batch.pk)
"""


@pytest.mark.parametrize("held_load_ends", ["after Redis is back", "while Redis is down"])
def test_redis_restarted_under_a_busy_worker_loses_nothing(
    stack, dataset, tmp_path, held_load_ends
):
    """kombu 5.7.0 made the worker's main process exit here (atlas_site/broker.py).

    A prefork worker with two processes, as bin/run and docker compose run it (one process
    per CPU): one process runs a load held before its commit, the other is free, so the
    worker waits on Redis for more; it also holds a load sent with a countdown (as a retry
    is), not yet due. Redis restarts (append-only, like docker-compose's). The worker stays
    (same process), the held load commits and is acknowledged, the delayed load and one
    queued after Redis is back run, each load runs once, and nothing is left unacknowledged
    in Redis to be delivered again an hour later.
    """
    stack.sql("UPDATE pipeline.dataset SET auto_promote = false")
    worker = spawn_worker(
        queue=stack.queue,
        log_path=tmp_path / "worker.log",
        # The stack's 8 s visibility timeout would hand the held load's message out again:
        # keep the default (an hour), so that a second delivery can only be the restart's.
        extra_env={**stack.env, "CELERY_BROKER_VISIBILITY_TIMEOUT": "3600"},
        name="busy",
        pool="prefork",
        concurrency=2,
    )

    def received() -> list[str]:
        return re.findall(r"Task explore\.tasks\.load_batch\[([0-9a-f-]+)\] received", worker.log)

    try:
        worker.wait_ready()
        pid = worker.pid
        with load_gate(stack.postgres.url("atlas"), dataset.pk) as gate:
            batches = store_files(stack, {"held.csv": 6_000})
            held = gate.hold_before_commit()
            delayed = int(
                stack.python(STORE_DELAYED.format(name="delayed.csv", lines=300, countdown=6))
            )
            batches[delayed] = 300
            wait_for(
                lambda: len(received()) == 2,
                30,
                "the delayed load was not received",
                lambda: worker.log,
            )

            stack.redis.stop()
            if held_load_ends == "while Redis is down":
                gate.release()
                wait_for(
                    lambda: batch_statuses(stack)[held] == "loaded",
                    60,
                    "the held load did not end",
                    lambda: worker.log,
                )
            time.sleep(1)  # the worker tries to reconnect
            assert worker.alive(), worker.log[-5000:]
            stack.redis.start()

            batches |= store_files(stack, {"queued.csv": 400})  # sent once Redis is back
            time.sleep(2)  # in the first case the held load still runs, across the reconnection
        wait_for(
            lambda: all(status == "loaded" for status in batch_statuses(stack).values()),
            60,
            "the loads did not all end",
            lambda: worker.log,
        )
        time.sleep(1)  # the last acknowledgement
        assert worker.alive() and worker.pid == pid, worker.log[-5000:]
        broker = redis.Redis.from_url(stack.redis.url(0))
        left = (broker.hlen("unacked"), broker.zcard("unacked_index"))
    finally:
        worker.stop()

    log = worker.log
    assert "Unrecoverable error" not in log
    assert "Connection to broker lost" in log  # the restart did reach the worker
    rows = assert_each_line_once(stack, batches)
    runs = stack.sql("SELECT status, error FROM pipeline.run WHERE kind = 'ingest'")
    assert [status for status, _ in runs] == ["succeeded"] * 3, runs
    # Each load ran once: the held one was not handed out again while it ran, nor after.
    ran = re.findall(r"Task explore\.tasks\.load_batch\[([0-9a-f-]+)\] succeeded", log)
    assert len(ran) == len(set(ran)) == 3, ran
    assert left == (0, 0), "unacknowledged messages left in Redis (delivered again in an hour)"
    print(f"\nredis restarted under a busy worker ({held_load_ends}): pid {pid} kept, {rows} rows")


# --- Resending stalled work (the tick) ---------------------------------------------------


def test_stalled_work_is_sent_again_once_per_period(dataset, settings, monkeypatch):
    from django.core.cache import cache

    sent: list = []
    monkeypatch.setattr(
        dispatch, "send_load", lambda pk, via="upload", task_id=None: sent.append(("load", pk))
    )
    from chart.tasks import promote_to_chart

    monkeypatch.setattr(
        promote_to_chart, "apply_async", lambda args, **options: sent.append(("chart", *args))
    )
    old = timezone.now() - STALLED_AFTER - timedelta(minutes=1)

    def batch(status: str) -> LandingBatch:
        made = LandingBatch.objects.create(
            key=uuid.uuid4(),
            dataset=dataset,
            sha256=uuid.uuid4().hex * 2,
            format="csv",
            received_at=old,
            status=status,
        )
        LandingBatch.objects.filter(pk=made.pk).update(created_at=old)
        return made

    stored, loading, fresh = batch(BatchStatus.STORED), batch(BatchStatus.LOADING), None
    fresh = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        sha256=uuid.uuid4().hex * 2,
        format="csv",
        received_at=timezone.now(),
        status=BatchStatus.STORED,
    )

    def run(status: str, **detail) -> Run:
        made = Run.objects.create(
            dataset=dataset,
            kind=RunKind.PROMOTE_CHART,
            status=status,
            triggered_by="t",
            detail=detail,
        )
        Run.objects.filter(pk=made.pk).update(created_at=old)
        return made

    queued = run(RunStatus.QUEUED, to_layer=Layer.CHART)
    orphan = run(RunStatus.RUNNING, to_layer=Layer.NAVIGATE)
    alive = run(RunStatus.RUNNING)
    done = run(RunStatus.SUCCEEDED)
    for key in [f"batch:{b.pk}" for b in (stored, loading, fresh)] + [
        f"run:{r.pk}" for r in (queued, orphan, alive, done)
    ]:
        cache.delete("atlas:resent:" + key)
    from atlas_site.advisory_locks import LOAD_BATCH, RUN
    from atlas_site.ownership import RESENT_KEY

    database = connection.settings_dict["NAME"]
    cache.delete(RESENT_KEY.format(database, LOAD_BATCH, loading.pk))
    cache.delete_many([RESENT_KEY.format(database, RUN, r.pk) for r in (orphan, alive, done)])

    from django.db import connections

    from atlas_site.advisory_locks import RUN

    holder = connections.create_connection("default")  # a live worker holds its run's lock
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [RUN, alive.pk])
        from django.db import transaction

        with transaction.atomic():
            resent = resend_stalled_work(now=timezone.now())
        with transaction.atomic():
            again = resend_stalled_work(now=timezone.now())
    finally:
        holder.close()

    assert resent == {"batches": [stored.pk, loading.pk], "runs": [queued.pk, orphan.pk]}
    assert sorted(sent, key=str) == sorted(
        [
            ("load", stored.pk),
            ("load", loading.pk),
            ("chart", queued.pk, False),  # asked for chart only
            ("chart", orphan.pk, True),
        ],
        key=str,
    )
    assert again == {"batches": [], "runs": []}  # once per period
