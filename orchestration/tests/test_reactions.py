"""What comes next: runs requested get their task, landed batches their load and promotion."""

import io

import pytest
from celery import Celery

from chart.services import promote_to_chart
from explore import services as explore_services
from explore.models import LandingBatch
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from governance.pipeline.services import create_run, finish_run, request_promotion

pytestmark = pytest.mark.django_db

CSV = b"id,name,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n"


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent (Celery.send_task, which apply_async calls): (name, args, options)."""
    calls = []

    def send_task(app, name, args=None, kwargs=None, **options):
        if not name.startswith("dashboards."):  # the dashboards' refresh as runs end
            calls.append((name, list(args or []), options))

    monkeypatch.setattr(Celery, "send_task", send_task)
    return calls


def names(sent) -> list[str]:
    return [name for name, _, _ in sent]


def test_a_requested_run_gets_its_task_once_the_request_commits(
    customers, sent, settings, django_capture_on_commit_callbacks
):
    settings.ATLAS_PROMOTION_QUEUE = "promotions"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    [(name, args, options)] = sent
    assert (name, args, options["queue"]) == (
        "chart.tasks.promote_to_chart",
        [run.pk, False],
        "promotions",
    )


def test_a_stored_batch_gets_its_load_and_a_retry_gets_it_again(
    customers, sent, settings, django_capture_on_commit_callbacks
):
    settings.ATLAS_INGEST_QUEUE = "loads"
    with django_capture_on_commit_callbacks(execute=True):
        batch = explore_services.store_upload(
            dataset=customers, file=io.BytesIO(CSV), filename="a.csv", actor="test"
        )
    with django_capture_on_commit_callbacks(execute=True):
        explore_services.store_upload(
            dataset=customers,
            file=io.BytesIO(CSV + b"3,C,c@example.com\n"),
            filename="b.csv",
            actor="test",
            queue=False,
        )
    assert [(name, args, options["queue"]) for name, args, options in sent] == [
        ("explore.tasks.load_batch", [batch.pk, "upload"], "loads")
    ]


def test_a_landed_batch_of_an_auto_promoting_dataset_is_promoted_to_navigate(
    customers, sent, django_capture_on_commit_callbacks
):
    customers.auto_promote = True
    customers.save()
    with django_capture_on_commit_callbacks(execute=True):
        batch = explore_services.store_upload(
            dataset=customers, file=io.BytesIO(CSV), filename="a.csv", actor="test", queue=False
        )
        explore_services.load_batch(batch_id=batch.pk, triggered_by="test")
    promotion = Run.objects.get(kind=RunKind.PROMOTE_CHART)
    assert (promotion.triggered_by, promotion.detail["to_layer"]) == ("batch-landed", "navigate")
    assert names(sent) == ["chart.tasks.promote_to_chart"]


def test_no_promotion_without_auto_promote_or_without_a_parsed_line(
    customers, sent, django_capture_on_commit_callbacks
):
    customers.auto_promote = False
    customers.save()
    with django_capture_on_commit_callbacks(execute=True):
        batch = explore_services.store_upload(
            dataset=customers, file=io.BytesIO(CSV), filename="a.csv", actor="test", queue=False
        )
        explore_services.load_batch(batch_id=batch.pk, triggered_by="test")
    customers.auto_promote = True
    customers.save()
    run = create_run(dataset=customers, kind=RunKind.INGEST, triggered_by="test")
    finish_run(run, RunStatus.SUCCEEDED, detail={"rows_parsed": 0})
    failed = create_run(dataset=customers, kind=RunKind.INGEST, triggered_by="test")
    finish_run(failed, RunStatus.FAILED, error="x", detail={"rows_parsed": 5})
    assert LandingBatch.objects.get(pk=batch.pk).status == "loaded"
    assert not Run.objects.filter(kind=RunKind.PROMOTE_CHART).exists()
    assert sent == []


@pytest.mark.parametrize(("to_layer", "onwards"), [(Layer.NAVIGATE, True), (Layer.CHART, False)])
def test_a_chart_run_goes_on_to_navigate_only_when_asked(
    customers, land, sent, django_capture_on_commit_callbacks, to_layer, onwards
):
    land(customers, [{"id": "1", "name": "Ann", "email": "ann@example.com"}])
    run = create_run(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        triggered_by="t",
        detail={"to_layer": to_layer},
    )
    with django_capture_on_commit_callbacks(execute=True):
        promote_to_chart(dataset=customers, run=run, triggered_by="t")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    navigate = list(Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE))
    assert len(navigate) == int(onwards)
    if onwards:
        assert navigate[0].triggered_by == f"run {run.pk}"
        assert names(sent) == ["navigate.tasks.promote_to_navigate"]
    else:
        assert sent == []


def test_a_run_ends_with_its_follow_up_or_not_at_all(customers, land, sent):
    """A worker dying between the two would leave an ended run whose next step nobody asks
    for (a delivery again finds the run ended and does nothing): they commit together."""
    from governance.pipeline.signals import run_finished

    land(customers, [{"id": "1", "name": "Ann", "email": "ann@example.com"}])
    run = create_run(
        dataset=customers,
        kind=RunKind.PROMOTE_CHART,
        triggered_by="t",
        detail={"to_layer": "navigate"},
    )

    def dies_after_the_follow_up(sender, run, **kwargs):
        assert Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE).exists()
        raise SystemExit("the worker is killed here")

    run_finished.connect(dies_after_the_follow_up, dispatch_uid="test.dies")
    try:
        with pytest.raises(SystemExit):
            promote_to_chart(dataset=customers, run=run, triggered_by="t")
    finally:
        run_finished.disconnect(dispatch_uid="test.dies")
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # not ended: a delivery again finishes it
    assert not Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE).exists()
    promote_to_chart(dataset=customers, run=run, triggered_by="t")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Run.objects.filter(kind=RunKind.PROMOTE_NAVIGATE).count() == 1
