"""Judging records on every core while the promotion writes the previous chunk.

The evaluator (contract, rules, compiled PII patterns, keys) is built once in the
promoting process and inherited by forked worker processes, so nothing but raw
payloads (JSON text) and verdicts (values already JSON text) crosses between
processes: both pickle fast. Workers never touch the database: the promoting process
does every read and write, in order, so the watermark and crash-safety rules of
chart.services hold whatever the number of workers.
"""

import gc
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

from chart.evaluation import JudgedChunk, RawRow, RecordEvaluator

# Set in the promoting process just before the pool forks; read by the workers.
_evaluator: RecordEvaluator | None = None


def _judge_rows(rows: Sequence[RawRow]) -> JudgedChunk:
    return _evaluator.judge(rows)


def worker_count() -> int:
    configured = os.environ.get("ATLAS_PROMOTION_WORKERS")
    return int(configured) if configured else (os.cpu_count() or 1)


@contextmanager
def _children_allowed() -> Iterator[None]:
    # Celery's prefork pool runs tasks in daemonic processes, and multiprocessing
    # refuses children to those (lest they be orphaned). This pool's workers are
    # joined before the task returns, and exit by themselves if their parent dies
    # (their task queue breaks), so the rule's reason does not apply here.
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
        with _children_allowed():
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("fork")
            )
            # Fork every worker now, while the evaluator is the one set above.
            list(self._executor.map(len, [()] * self.workers))

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
