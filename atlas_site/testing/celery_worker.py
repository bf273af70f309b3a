"""A real Celery worker for tests: a `celery worker` process against the test database.

Tests that need the whole path (a task sent after commit, picked up from Redis, run
in another process, acknowledged or not) start one with `start_worker`, on a queue of
their own so that no other worker or test takes their messages:

    with start_worker(queue=queue, database=connection.settings_dict["NAME"]) as worker:
        ...
        worker.kill()  # SIGKILL: the message stays unacknowledged in Redis

The worker reads the suite's DATABASE_URL pointed at the test database and the
suite's REDIS_URL; `extra_env` adds or overrides settings read from the environment
(CELERY_BROKER_VISIBILITY_TIMEOUT, ATLAS_PROMOTION_CHUNK_SIZE, ...).

The watchdog (orchestration.watchdog) is off in these workers unless a test turns
it on (ATLAS_WATCHDOG_SECONDS in `extra_env`): it acts on the whole test database, and
tests that leave work without an owner on purpose (a redelivery by Redis, a dead letter,
a new request taking over) must not find it taken up behind their back by a worker that
another test started. `spawn_beat` starts `celery beat` sending the pipeline's tick to a
queue of the test's own.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings

WORKER_SETTINGS = "atlas_site.testing.worker_settings"
BEAT_SETTINGS = "atlas_site.testing.beat_settings"
READY_TIMEOUT = 90
# Celery's log lines for a task received and a task ended (however it ended).
RECEIVED = re.compile(r"\[([0-9a-f-]{36})\] received")
ENDED = re.compile(r"\[([0-9a-f-]{36})\] (?:succeeded|raised|retry|failed|ignored|rejected)")


class WorkerError(RuntimeError):
    """The worker exited or did not become ready; the message holds its log."""


def database_url(database: str) -> str:
    """The suite's DATABASE_URL pointed at `database` (host, socket and options kept)."""
    from atlas_site.settings.base import DEFAULT_DATABASE_URL

    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + quote(database)))


class WorkerProcess:
    """A running `celery worker`; its output goes to `log_path`."""

    def __init__(self, process: subprocess.Popen, *, queue: str, log_path: Path):
        self.process = process
        self.queue = queue
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    ready_marker = " ready."

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.log:
            if not self.alive():
                raise WorkerError(f"the Celery worker exited:\n{self.log[-5000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise WorkerError(f"the Celery worker is not ready:\n{self.log[-5000:]}")
            time.sleep(0.2)

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every task this worker received has ended (in its log).

        A worker shared by several tests may still be writing (ending a run, releasing a
        lock) when a test's assertions are done; the flush between transactional tests
        must not race it, or the two deadlock and the next test finds the last one's rows.
        """
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            log = self.log
            received = set(RECEIVED.findall(log))
            if received <= set(ENDED.findall(log)):
                return
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the worker's process group: no shutdown, no acknowledgement."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown (SIGTERM); SIGKILL if it does not end within `timeout`."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Children a prefork pool or an evaluation pool left behind.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def spawn_worker(
    *,
    queue: str,
    log_path: Path | None = None,
    database: str | None = None,
    extra_env: dict[str, str] | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    name: str | None = None,
) -> WorkerProcess:
    """Start `celery worker` consuming `queue`; returns at once (see `wait_ready`).

    `database`: the database the worker uses (the test database); default: the one
    Django is connected to in this process.
    """
    if database is None:
        from django.db import connection

        database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
        "DATABASE_URL": database_url(database),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "ATLAS_WATCHDOG_SECONDS": "0",
        # No heartbeat thread writing while a test empties the database (turned on by the
        # tests of orchestration.liveness).
        "ATLAS_LIVENESS_SECONDS": "0",
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "atlas_site",
        "worker",
        f"--pool={pool}",
        "-Q",
        queue,
        "-n",
        f"{name or queue}@%h",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="atlas-worker-")) / "worker.log"
    if pool != "solo":
        command += ["--concurrency", str(concurrency)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches its children
        )
    return WorkerProcess(process, queue=queue, log_path=log_path)


@contextmanager
def start_worker(
    *,
    queue: str,
    log_path: Path | None = None,
    database: str | None = None,
    extra_env: dict[str, str] | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    name: str | None = None,
):
    """A ready worker for the `with` block; stopped (or killed) when the block ends."""
    worker = spawn_worker(
        queue=queue,
        log_path=log_path,
        database=database,
        extra_env=extra_env,
        pool=pool,
        concurrency=concurrency,
        name=name,
    )
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


class BeatProcess(WorkerProcess):
    """A running `celery beat`."""

    ready_marker = "beat: Starting"


def spawn_beat(
    *,
    queue: str,
    log_path: Path | None = None,
    database: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> BeatProcess:
    """Start `celery beat` sending the pipeline's tick (every minute, and once at start)
    to `queue`; returns at once (see `wait_ready`)."""
    if database is None:
        from django.db import connection

        database = connection.settings_dict["NAME"]
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="atlas-beat-")) / "beat.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": BEAT_SETTINGS,
        "DATABASE_URL": database_url(database),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        "ATLAS_TEST_BEAT_QUEUE": queue,
        "ATLAS_LIVENESS_SECONDS": "0",
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "atlas_site",
        "beat",
        "--schedule",
        str(log_path.parent / "beat-schedule"),
        "--loglevel=INFO",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return BeatProcess(process, queue=queue, log_path=log_path)
