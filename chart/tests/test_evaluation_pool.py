"""The evaluation pool: its processes hold none of the parent's connections, die with it,
and one killed (as the kernel's OOM killer does) costs a restart, not the promotion."""

import gc
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection

from chart import evaluation_pool
from chart.evaluation_pool import EvaluationPool
from chart.models import ChartRecord, QuarantinedRecord
from chart.services import EVALUATION_CRASHES, promote_to_chart
from chart.tests.test_evaluation import evaluator
from explore.models import RawRecord
from governance.pipeline.models import Layer, RunStatus, Watermark


def _socket_fds() -> list[int]:
    """The socket descriptors this process holds (run in an evaluation process)."""
    found = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            if stat.S_ISSOCK(entry.stat().st_mode):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_worker_judges_with_the_cycle_collector_off_and_frees_the_cycles_after(monkeypatch):
    # Invalid e-mail addresses make reference cycles (Django's ValidationError refers to
    # itself): chunk after chunk, they must not pile up in a worker.
    judge = evaluator()
    monkeypatch.setattr(evaluation_pool, "_evaluator", judge)
    failing = {"id": "x", "email": "not an address", "ip": "::1", "notes": None}
    rows = [(n, json.dumps(failing), "") for n in range(1, 201)]
    collections = []
    gc.callbacks.append(lambda phase, info: collections.append((phase, info["generation"])))
    try:
        evaluation_pool._judge_rows(rows)
        # One pass over the youngest generation after the chunk, none while judging it.
        assert collections == [("start", 0), ("stop", 0)]
        assert gc.isenabled()
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(20):  # chunk after chunk, nothing else made in between
            evaluation_pool._judge_rows(rows)
        assert len(gc.get_objects()) < before + 500
    finally:
        gc.callbacks.pop()


@pytest.mark.django_db
def test_evaluation_processes_hold_no_socket_of_the_parent():
    # The parent holds a PostgreSQL and a Redis connection, as a promoting worker does.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    cache.set("atlas-pool-test", 1)
    assert _socket_fds(), "the test process should hold sockets"
    pool = EvaluationPool(evaluator=None, workers=2)
    pool.start()
    try:
        held = [pool._executor.submit(_socket_fds).result(timeout=30) for _ in range(4)]
    finally:
        pool.close()
    assert held == [[]] * 4
    # The parent's own connections are untouched: nothing was sent on them.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
    assert cache.get("atlas-pool-test") == 1


PARENT = textwrap.dedent(
    """
    import time

    import django

    django.setup()
    from chart.evaluation_pool import EvaluationPool

    pool = EvaluationPool(evaluator=None, workers=2)
    pool.start()
    print(" ".join(str(pid) for pid in pool._executor._processes), flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_evaluation_processes_exit_when_their_parent_is_killed():
    """SIGKILL of the promoting process (the OOM killer's way): its pool goes with it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "atlas_site.settings.test"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        children = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(children) == 2 and all(_alive(pid) for pid in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)], "orphaned evaluation processes"
    finally:
        parent.kill()
        for pid in children if "children" in locals() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- A killed evaluation process --------------------------------------------------------

real_judge_rows = evaluation_pool._judge_rows


# Set before the pool forks, so its processes see it: kill the process judging a part
# that holds KILL["raw_id"], KILL["times"] times (counted in a file: each is a new process).
KILL: dict = {}


def _killing_judge_rows(rows):
    if any(row[0] == KILL["raw_id"] for row in rows):
        marker = KILL["marker"]
        killed = int(marker.read_text()) if marker.exists() else 0
        if killed < KILL["times"]:
            marker.write_text(str(killed + 1))
            os.kill(os.getpid(), signal.SIGKILL)
    return real_judge_rows(rows)


@pytest.fixture
def kill_judging(monkeypatch, tmp_path):
    """kill_judging(raw_id, times): the evaluation process judging that record dies."""
    monkeypatch.setenv("ATLAS_PROMOTION_WORKERS", "2")
    monkeypatch.setattr(evaluation_pool, "_judge_rows", _killing_judge_rows)

    def arm(raw_id: int, times: int) -> Path:
        KILL.update(raw_id=raw_id, times=times, marker=tmp_path / "kills")
        return KILL["marker"]

    yield arm
    KILL.clear()


def record(number: int) -> dict:
    return {
        "id": str(number),
        "email": f"user{number}@example.com",
        "tier": "gold" if number % 2 else "silver",
        "amount": "1.50",
        "ssn": "123-45-6789",
        "signup": "2026-01-02",
        "notes": "",
    }


def assert_each_raw_record_once(dataset) -> None:
    raw_ids = set(RawRecord.objects.filter(dataset=dataset).values_list("id", flat=True))
    promoted = list(
        ChartRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    held = list(
        QuarantinedRecord.objects.filter(dataset=dataset).values_list("raw_record_id", flat=True)
    )
    assert len(promoted) + len(held) == len(set(promoted) | set(held)) == len(raw_ids)
    assert set(promoted) | set(held) == raw_ids


@pytest.mark.django_db
def test_a_killed_evaluation_process_is_replaced_and_the_promotion_goes_on(
    customers, land, kill_judging
):
    raws = land(customers, [record(number) for number in range(1, 1201)])
    kills = kill_judging(raws[650].pk, times=1)  # in the fourth chunk of 200

    run = promote_to_chart(dataset=customers, triggered_by="test", chunk_size=200)

    assert kills.read_text() == "1"  # it was killed, once
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.detail["evaluation_restarts"] == 1
    assert run.rows_in == 1200 == run.rows_promoted + run.rows_quarantined
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == raws[-1].pk
    assert_each_raw_record_once(customers)


@pytest.mark.django_db
def test_a_chunk_that_kills_its_evaluation_process_every_time_fails_the_run_naming_it(
    customers, land, kill_judging
):
    raws = land(customers, [record(number) for number in range(1, 1201)])
    kills = kill_judging(raws[650].pk, times=99)  # in the fourth chunk of 200

    with pytest.raises(Exception, match="killed its evaluation process"):
        promote_to_chart(dataset=customers, triggered_by="test", chunk_size=200)

    from governance.pipeline.models import Run

    run = Run.objects.get(dataset=customers)
    assert run.status == RunStatus.FAILED
    first, last = raws[600].pk, raws[799].pk
    assert f"raw records with ids {first} to {last} (200 records)" in run.error
    assert f"{EVALUATION_CRASHES} times" in run.error
    assert int(kills.read_text()) >= EVALUATION_CRASHES
    # The chunks before it stay promoted; the run can be started again from there.
    assert Watermark.objects.get(dataset=customers, layer=Layer.CHART).position == raws[599].pk
    assert run.rows_in == 600
