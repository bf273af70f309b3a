"""The per-run summaries: what they hold, and that a run is summarised exactly once."""

import time
import uuid

import pytest
from django.db.models import Sum
from django.test import override_settings

from atlas_site.testing.celery_worker import start_worker
from chart.models import PiiFinding, QuarantinedRecord
from dashboards.models import PiiFindingSummary, QuarantineReasonSummary, SummarisedRun
from dashboards.services import refresh_run_summaries, summarise_run
from governance.pipeline.models import Run, RunKind, RunStatus


def test_summaries_equal_the_rows_they_summarise(promoted):
    run = promoted["chart_run"]
    assert run.status == RunStatus.SUCCEEDED, run.error
    summed = PiiFindingSummary.objects.filter(run=run).aggregate(n=Sum("findings"))["n"]
    assert summed == PiiFinding.objects.filter(run=run).count() > 0
    by_field = {
        (s.field_name, s.pii_type): s.findings for s in PiiFindingSummary.objects.filter(run=run)
    }
    assert by_field[("notes", "email")] == 2
    reasons = {
        (s.field_name, s.rule): s.records for s in QuarantineReasonSummary.objects.filter(run=run)
    }
    assert reasons == {("tier", "allowed_values"): 1, ("amount", "range"): 1, ("", "parse"): 1}
    assert QuarantinedRecord.objects.filter(run=run).count() == 2
    assert all(s.day == run.started_at.date() for s in PiiFindingSummary.objects.filter(run=run))


def test_a_run_is_summarised_once(promoted):
    run = promoted["chart_run"]
    before = PiiFindingSummary.objects.count()
    assert summarise_run(run=run) is False
    assert refresh_run_summaries() == 0
    assert PiiFindingSummary.objects.count() == before
    # Every ended run is marked, those with nothing to summarise too.
    ended = Run.objects.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]).count()
    assert SummarisedRun.objects.count() == ended


def test_a_run_still_running_waits(dataset):
    run = Run.objects.create(dataset=dataset, kind=RunKind.PROMOTE_CHART, status="running")
    assert summarise_run(run=run) is False
    assert refresh_run_summaries() == 0
    assert not SummarisedRun.objects.filter(run=run).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_ending_has_a_worker_summarise_it(dataset):
    """The whole path: the run is saved as ended, the refresh is queued after commit, a
    real worker picks it up from Redis and writes the summary."""
    queue = f"dashboards-{uuid.uuid4().hex[:8]}"
    with (
        override_settings(ATLAS_PROMOTION_QUEUE=queue),
        start_worker(queue=queue, extra_env={"ATLAS_PROMOTION_QUEUE": queue}),
    ):
        run = Run.objects.create(dataset=dataset, kind=RunKind.PROMOTE_CHART, status="running")
        run.status = RunStatus.SUCCEEDED
        run.save()  # autocommit: on_commit sends the task at once
        deadline = time.monotonic() + 30
        while not SummarisedRun.objects.filter(run=run).exists():
            assert time.monotonic() < deadline, "the worker did not summarise the run"
            time.sleep(0.2)
