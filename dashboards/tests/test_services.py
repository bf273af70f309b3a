"""The per-run summaries: what they hold, and that a run is summarised exactly once."""

from django.db.models import Sum

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
