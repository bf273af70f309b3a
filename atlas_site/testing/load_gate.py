"""Hold a batch load at one chosen moment, so that fault tests act there instead of racing it.

A load is one transaction (explore.services.loading._copy_batch): it takes the dataset's
LOAD_DATASET lock, deletes and copies the batch's rows, then updates its batch to
'loaded' and commits. A test that kills a worker, or stops Redis or PostgreSQL, "while
a load is in flight" must find the load there however fast the machine is: a 60,000-line
file loads in well under a second, quicker than a poll can catch it.

`load_gate` makes the moment certain with two ordinary locks a reader could hold:

1. On entry it takes the dataset's LOAD_DATASET lock, so a load that starts (its batch
   claimed as 'loading', its run created) waits for it.
2. `hold_before_commit()` sees that load waiting, takes a share lock on its batch row
   and lets the dataset lock go: the load copies every row, then waits to mark the
   batch loaded, its transaction open. The test acts there.
3. `release()` lets the load go on (or its orphaned backend end, once its worker died).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

from atlas_site.advisory_locks import LOAD_DATASET


class LoadGate:
    def __init__(self, url: str, dataset_id: int):
        self.dataset_id = dataset_id
        # Autocommit for the observer: pg_stat_activity is read once per transaction.
        self._observer = psycopg.connect(url, autocommit=True)
        self._dataset_lock = psycopg.connect(url, autocommit=True)
        self._row_lock = psycopg.connect(url, autocommit=False)
        self._dataset_lock.execute("SELECT pg_advisory_lock(%s, %s)", [LOAD_DATASET, dataset_id])
        self.loader_pid: int | None = None

    def _blocked_by(self, connection: psycopg.Connection) -> list[int]:
        rows = self._observer.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [connection.info.backend_pid],
        ).fetchall()
        return [pid for (pid,) in rows]

    def _wait(self, condition, what: str, timeout: float):
        deadline = time.monotonic() + timeout
        while not (found := condition()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout} s")
            time.sleep(0.05)
        return found

    def hold_before_commit(self, timeout: float = 60) -> int:
        """Wait for a load of the dataset; hold it with every row copied. Returns its batch id."""
        [self.loader_pid] = self._wait(
            lambda: self._blocked_by(self._dataset_lock), "no load waited for the dataset", timeout
        )
        [(batch_id,)] = self._observer.execute(
            "SELECT id FROM explore.landing_batch WHERE dataset_id = %s AND status = 'loading'",
            [self.dataset_id],
        ).fetchall()
        self._row_lock.execute(
            "SELECT 1 FROM explore.landing_batch WHERE id = %s FOR SHARE", [batch_id]
        )
        self._dataset_lock.execute(
            "SELECT pg_advisory_unlock(%s, %s)", [LOAD_DATASET, self.dataset_id]
        )
        self._wait(
            lambda: self.loader_pid in self._blocked_by(self._row_lock),
            f"the load of batch {batch_id} did not reach its commit",
            timeout,
        )
        return batch_id

    def release(self) -> None:
        """Let the held load go on (a server stopped under it already did)."""
        with suppress(psycopg.Error):
            self._row_lock.rollback()
        with suppress(psycopg.Error):
            self._dataset_lock.execute("SELECT pg_advisory_unlock_all()")

    def wait_loader_gone(self, timeout: float = 30) -> None:
        """After its worker was killed: wait until the held load's backend has ended."""
        self._wait(
            lambda: (
                not self._observer.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [self.loader_pid]
                ).fetchone()
            ),
            "the killed loader's backend did not end",
            timeout,
        )

    def close(self) -> None:
        self.release()
        for connection in (self._row_lock, self._dataset_lock, self._observer):
            with suppress(psycopg.Error):
                connection.close()


@contextmanager
def load_gate(url: str, dataset_id: int) -> Iterator[LoadGate]:
    """Loads of `dataset_id` in the database at `url` wait for the gate; see the module."""
    gate = LoadGate(url, dataset_id)
    try:
        yield gate
    finally:
        gate.close()
