"""Judging records on every core while the promotion writes the previous chunk.

The evaluator (contract, rules, compiled PII patterns, keys) is built once in the
promoting process and inherited by forked worker processes, so nothing but raw
payloads (JSON text) and verdicts (values already JSON text) crosses between
processes: both pickle fast. Workers never touch the database: the promoting process
does every read and write, in order, so the watermark and crash-safety rules of
chart.services hold whatever the number of workers.

A worker holds nothing of its parent's but memory. The fork copies every file
descriptor, among them the promoting process's PostgreSQL and Redis sockets: kept open
in a worker that outlives its parent (the parent killed by the OOM killer), they would
keep the parent's session alive, `idle in transaction` and holding the dataset's
advisory locks, so that no other worker could ever take the promotion up. So each worker
first drops every inherited socket (without a word on it: a protocol-level close would
end the parent's session too), and dies with its parent (PR_SET_PDEATHSIG on Linux,
and a thread that watches the parent elsewhere).
"""

import ctypes
import gc
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from chart.evaluation import JudgedChunk, RawRow, RecordEvaluator

# Set in the promoting process just before the pool forks; read by the workers.
_evaluator: RecordEvaluator | None = None


__all__ = ["BrokenProcessPool", "EvaluationPool", "PendingChunk", "evaluation_pool"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_CHECK_SECONDS = 1.0


def _judge_rows(rows: Sequence[RawRow]) -> JudgedChunk:
    # The cycle collector is off while a worker judges a chunk: its passes over the
    # chunk's objects, again and again as they aged, took a tenth of the worker's time.
    # Judging makes few cycles (Django's ValidationError of an invalid e-mail address
    # refers to itself); one pass over what the chunk made frees them.
    gc.disable()
    try:
        return _evaluator.judge(rows)
    finally:
        gc.enable()
        gc.collect(0)  # everything made while it was off is in the youngest generation


def _start_worker(parent_pid: int) -> None:
    """First thing in each worker process: hold none of the parent's sockets, die with it."""
    drop_inherited_sockets()
    die_with_parent(parent_pid)


def drop_inherited_sockets() -> int:
    """Let go of every socket this process inherited; returns how many.

    Each is replaced by /dev/null (dup2): the descriptor is closed here without anything
    sent on the socket (the parent's connection goes on as it was), and its number stays
    taken, so a file opened later cannot be mistaken for it by an object still holding it.
    """
    directory = Path("/proc/self/fd")
    if not directory.is_dir():
        directory = Path("/dev/fd")
    devnull = os.open(os.devnull, os.O_RDWR)
    dropped = 0
    try:
        for entry in list(directory.iterdir()):
            fd = int(entry.name)
            if fd == devnull:
                continue
            try:
                is_socket = stat.S_ISSOCK(os.fstat(fd).st_mode)
            except OSError:  # the listing's own descriptor, closed by now
                continue
            if is_socket:
                os.dup2(devnull, fd)
                dropped += 1
    finally:
        os.close(devnull)
    return dropped


def die_with_parent(parent_pid: int) -> None:
    """Exit when the process `parent_pid` (this one's parent) dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # the thread below still watches
            pass
    if os.getppid() != parent_pid:  # it died before the signal was asked for
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="atlas-parent-watch", daemon=True
    ).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def worker_count() -> int:
    configured = os.environ.get("ATLAS_PROMOTION_WORKERS")
    return int(configured) if configured else (os.cpu_count() or 1)


@contextmanager
def _children_allowed() -> Iterator[None]:
    # Celery's prefork pool runs tasks in daemonic processes, and multiprocessing
    # refuses children to those (lest they be orphaned). This pool's workers are
    # joined before the task returns, and exit by themselves if their parent dies
    # (die_with_parent), so the rule's reason does not apply here.
    process = multiprocessing.current_process()
    was_daemon = process._config.get("daemon")
    process._config["daemon"] = False
    try:
        yield
    finally:
        if was_daemon is not None:
            process._config["daemon"] = was_daemon


class EvaluationPool:
    """Evaluates chunks of raw rows: in worker processes, or in-process for one worker."""

    def __init__(self, evaluator: RecordEvaluator, workers: int):
        self.evaluator = evaluator
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        global _evaluator
        # Every object that exists now is frozen out of the garbage collector until
        # close(): collections during the run walk only what the run makes, not the
        # whole heap (walking it cost a tenth of a worker's time, and a quarter of the
        # promoting process's). Forked workers inherit the frozen state.
        gc.freeze()
        if self.workers <= 1:
            return
        _evaluator = self.evaluator
        with _children_allowed(), warnings.catch_warnings():
            # Python warns that forking a process with threads (the heartbeat of
            # atlas_site.ownership) may deadlock a child that takes a lock one of them
            # held: the workers take none of theirs (no cache, no database).
            warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks")
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
            # Fork every worker now, while the evaluator is the one set above.
            list(self._executor.map(len, [()] * self.workers))

    def restart(self) -> None:
        """A new set of workers, after one died (the pool is broken then)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self.start()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        gc.unfreeze()  # collected as usual again

    def submit(self, rows: Sequence[RawRow]) -> "PendingChunk":
        if self._executor is None or len(rows) < 2 * self.workers:
            done: Future = Future()
            done.set_result(self.evaluator.judge(rows))
            return PendingChunk([done])
        size = -(-len(rows) // self.workers)
        parts = [rows[start : start + size] for start in range(0, len(rows), size)]
        return PendingChunk([self._executor.submit(_judge_rows, part) for part in parts])


class PendingChunk:
    def __init__(self, futures: list[Future]):
        self.futures = futures

    def result(self) -> JudgedChunk:
        """The whole chunk's verdicts, in raw id order, once every part is judged."""
        parts = [future.result() for future in self.futures]
        if len(parts) == 1:
            return parts[0]
        return JudgedChunk(
            verdicts=[verdict for part in parts for verdict in part.verdicts],
            expected_pii=sum((part.expected_pii for part in parts), Counter()),
        )


@contextmanager
def evaluation_pool(evaluator: RecordEvaluator, workers: int | None = None):
    pool = EvaluationPool(evaluator, worker_count() if workers is None else workers)
    try:
        pool.start()
        yield pool
    finally:
        pool.close()
