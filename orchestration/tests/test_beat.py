"""One scheduler at a time: a second beat stands by, sends nothing, and takes over within
seconds when the first one dies. Daily and six-hourly work runs at set hours."""

import time
import uuid

import pytest
from celery.schedules import crontab
from django.conf import settings

from atlas_site.testing.celery_worker import spawn_beat
from orchestration.beat import STANDBY_SECONDS

SENT = "Sending due task"


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s\n{log()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_stands_by_and_takes_over_when_the_first_dies(tmp_path):
    queue = f"atlas-beat-{uuid.uuid4().hex[:8]}"
    fast = {"ATLAS_TEST_BEAT_SECONDS": "1"}
    first = spawn_beat(queue=queue, log_path=tmp_path / "first" / "beat.log", extra_env=fast)
    second = None
    try:
        wait_for(lambda: SENT in first.log, 30, "the first beat sent nothing", lambda: first.log)
        second = spawn_beat(queue=queue, log_path=tmp_path / "second" / "beat.log", extra_env=fast)
        wait_for(lambda: "standing by" in second.log, 60, "no stand-by", lambda: second.log)
        time.sleep(STANDBY_SECONDS + 1)  # a tick or two of the standby: still nothing sent
        assert SENT not in second.log and "took the scheduler lock" not in second.log

        first.kill()  # its session ends, and the lock with it
        killed_at = time.monotonic()
        wait_for(
            lambda: SENT in second.log, 30, "the standby did not take over", lambda: second.log
        )
        took = time.monotonic() - killed_at
        print(f"\n[beat] the standby took over {took:.1f} s after the first beat was killed")
        assert "took the scheduler lock" in second.log
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_daily_and_six_hourly_work_runs_at_set_hours():
    schedule = settings.CELERY_BEAT_SCHEDULE
    retention = schedule["apply-retention"]["schedule"]
    partitions = schedule["ensure-partitions"]["schedule"]
    assert isinstance(retention, crontab) and isinstance(partitions, crontab)
    assert retention.hour == {settings.ATLAS_RETENTION_HOUR} and retention.minute == {0}
    assert partitions.hour == {0, 6, 12, 18}
    assert settings.CELERY_BEAT_SCHEDULER == "orchestration.beat:SingleBeatScheduler"
