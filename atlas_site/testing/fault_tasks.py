"""Tasks that only the fault tests' workers load (atlas_site.testing.fault_worker_settings)."""

import os
import signal

from celery import shared_task


@shared_task
def crash_worker(run_id: int) -> None:
    """Kill the process running it, as a segfault or an out-of-memory kill would."""
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task
def succeed(run_id: int) -> int:
    return run_id
