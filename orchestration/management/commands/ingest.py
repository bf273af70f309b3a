import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from explore import services
from explore.models import BatchStatus, LandingBatch
from explore.parsers import FORMATS
from governance.pipeline.models import Dataset
from orchestration import dispatch


def describe_outcome(batch: LandingBatch) -> str:
    if batch.status == BatchStatus.LOADED:
        lines = f"{batch.lines_total} lines, " if batch.lines_total != batch.rows_total else ""
        return (
            f"batch {batch.pk} loaded: {lines}{batch.rows_total} records, {batch.rows_parsed} "
            f"read, {batch.rows_failed} could not be read (kept with their errors)"
        )
    return f"batch {batch.pk} {batch.get_status_display().lower()}: {batch.error}"


# How long a queued load may stay untouched before --wait asks whether a worker takes
# loads at all (rather than waiting out its whole timeout for none).
UNTOUCHED_SECONDS = 3.0


def wait_for(
    batch: LandingBatch, *, timeout: float, poll: float = 0.5, ask_workers: bool = False
) -> LandingBatch:
    """Poll the batch until it is loaded or failed; CommandError after `timeout` seconds.

    ask_workers: if the batch is still waiting after UNTOUCHED_SECONDS, CommandError at
    once when no Celery worker consumes the load queue.
    """
    started = time.monotonic()
    deadline = started + timeout
    asked = not ask_workers
    while True:
        batch.refresh_from_db()
        if batch.status in (BatchStatus.LOADED, BatchStatus.FAILED):
            return batch
        if (
            not asked
            and batch.status == BatchStatus.STORED
            and time.monotonic() - started > UNTOUCHED_SECONDS
        ):
            asked = True
            _a_worker_takes_loads(batch)
        if time.monotonic() > deadline:
            raise CommandError(
                f"batch {batch.pk} is still {batch.get_status_display().lower()} after "
                f"{timeout:.0f} s: is a Celery worker running? (see --inline)"
            )
        time.sleep(poll)


def _a_worker_takes_loads(batch: LandingBatch) -> None:
    queue = dispatch.load_queue()
    if not dispatch.workers_consuming(queue):
        raise CommandError(
            f"batch {batch.pk} is stored and its load queued, but no Celery worker consumes "
            f"the queue {queue!r} (none answered within 2 s): start one (bin/run does), or "
            "load in this process with --inline; a worker started later loads it"
        )


class Command(BaseCommand):
    help = (
        "Store a file for a dataset and queue its load into explore; print the batch id. "
        "With --wait, wait for the worker and print the outcome."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's slug.")
        parser.add_argument("file", help="CSV, JSON Lines or JSON array; gzip-compressed too.")
        parser.add_argument("--format", choices=FORMATS, default="", help="Default: from the name.")
        parser.add_argument("--wait", action="store_true", help="Wait for the load's outcome.")
        parser.add_argument(
            "--timeout", type=float, default=3600, help="Seconds --wait waits (default 3600)."
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Load in this process instead of a Celery worker (implies --wait).",
        )
        parser.add_argument("--user", help="Username recorded as the uploader.")

    def handle(self, *args, dataset, file, format, wait, timeout, inline, user, **options):
        target = Dataset.objects.filter(slug=dataset).first()
        if target is None:
            raise CommandError(f"no dataset {dataset!r}")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no file at {file}")
        actor = "manage.py ingest"
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user {user!r}")
        with path.open("rb") as handle:
            try:
                batch = services.store_upload(
                    dataset=target,
                    file=handle,
                    filename=path.name,
                    actor=actor,
                    format=format,
                    via="cli",
                    # Sent below, so that a broker outage is this command's error (a
                    # non-zero exit and one line) instead of a logged traceback.
                    queue=False,
                )
            except services.IngestError as exc:
                raise CommandError(f"refused: {exc}") from None
        self.stdout.write(f"batch {batch.pk}")
        if not inline:
            try:
                dispatch.send_load(batch.pk, via="cli")
            except dispatch.QueueError as exc:
                raise CommandError(str(exc)) from None
        if inline:
            services.load_batch(batch_id=batch.pk, triggered_by="manage.py ingest --inline")
        if wait or inline:
            batch = wait_for(batch, timeout=timeout, ask_workers=not inline)
            outcome = describe_outcome(batch)
            if batch.status == BatchStatus.FAILED:
                raise CommandError(outcome)
            self.stdout.write(self.style.SUCCESS(outcome))
