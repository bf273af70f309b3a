"""When the reporting views are rebuilt after a change: here when this role may, on the
maintenance worker when it may not or a reader holds a view too long; once per commit."""

import pytest

from navigate import reporting
from orchestration import dispatch
from orchestration.reporting import REPORTING_SOURCES

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(
        dispatch.build_reporting_views, "apply_async", lambda **options: calls.append(options)
    )
    return calls


@pytest.fixture
def built(monkeypatch):
    calls = []
    monkeypatch.setattr(reporting, "build_reporting_views", lambda: calls.append(1))
    return calls


def test_one_rebuild_per_commit_here_when_the_role_owns_the_schema(
    dataset, built, sent, django_capture_on_commit_callbacks
):
    from governance.pipeline.models import DatasetField

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for position in range(3):
            DatasetField.objects.create(dataset=dataset, name=f"f{position}", position=position)
    assert len(callbacks) == 3 and built == [1] and sent == []


def test_sent_to_the_maintenance_worker_when_the_role_may_not(
    dataset, built, sent, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.ATLAS_MAINTENANCE_QUEUE = "maintenance"
    monkeypatch.setattr(reporting, "can_build", lambda: False)
    with django_capture_on_commit_callbacks(execute=True):
        dataset.save()
    assert built == [] and sent == [{"queue": "maintenance"}]


def test_sent_to_a_worker_when_a_reader_holds_a_view(
    dataset, sent, monkeypatch, django_capture_on_commit_callbacks
):
    def busy():
        raise reporting.ReportingBuildError("LockNotAvailable: lock timeout")

    monkeypatch.setattr(reporting, "build_reporting_views", busy)
    with django_capture_on_commit_callbacks(execute=True):
        dataset.save()
    assert sent == [{}]


def test_what_the_views_are_built_from():
    labels = {model._meta.label for model in REPORTING_SOURCES}
    assert labels == {
        "pipeline.Dataset",
        "pipeline.DatasetField",
        "compliance.ClassificationLevel",
        "navigate.MetricDefinition",
    }
