"""OpenLineage: loads and promotions send START then COMPLETE (or FAIL with the error) to a
real HTTP receiver or a file, valid against the specification's schema, with column
lineage, quality and no record's value; nothing when off; a receiver that is down never
touches the run."""

import io
import json
import logging
import time
import uuid

import pytest
from celery import Celery
from django.test import override_settings

from atlas_site.testing.celery_worker import start_worker
from atlas_site.testing.http_receiver import HttpReceiver
from chart.services import promote_to_chart
from explore import services as explore_services
from governance.pipeline.models import GateAction, Layer, Run, RunKind, RunStatus
from governance.pipeline.services import create_run, finish_run, request_promotion
from navigate.models import MetricDefinition
from navigate.services import promote_to_navigate
from orchestration import openlineage, tasks
from orchestration.tests.openlineage_schema import problems

pytestmark = pytest.mark.django_db

PLANTED = "QX-PLANTED-4471"
CSV = (
    "id,email,tier,amount,ssn,signup,notes\n"
    f"1,ann@example.com,gold,10.50,{PLANTED},2026-01-05,fine\n"
    "2,bob@example.com,silver,4,123-45-6789,2026-01-06,ok\n"
    f"3,cy@example.com,{PLANTED},7,111-22-3333,2026-02-01,{PLANTED}\n"  # tier not allowed
).encode()


class Receiver(HttpReceiver):
    """An OpenLineage endpoint: each event, and its request's path and headers."""

    def __init__(self):
        super().__init__(status=201)

    @property
    def events(self) -> list[dict]:
        return self.bodies


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def emitted(monkeypatch):
    """The events' task runs in this process when sent (with its retries); other tasks
    sent as runs end (dashboards, follow-ups) go nowhere."""
    calls: list[tuple] = []

    def apply_async(args, **options):
        calls.append(tuple(args))
        return tasks.emit_openlineage.apply(args)

    monkeypatch.setattr(tasks.emit_openlineage, "apply_async", apply_async)
    monkeypatch.setattr(Celery, "send_task", lambda *args, **kwargs: None)
    return calls


@pytest.fixture
def lineage_on(settings, receiver, emitted):
    settings.ATLAS_OPENLINEAGE_URL = receiver.url
    settings.ATLAS_OPENLINEAGE_API_KEY = "test-api-key"
    settings.ATLAS_OPENLINEAGE_NAMESPACE = "atlas://test-site"
    receiver.start()
    return receiver


@pytest.fixture
def orders(customers):
    customers.auto_promote = False  # each step is started by the test
    customers.save()
    return customers


def load(dataset, django_capture_on_commit_callbacks) -> Run:
    batch = explore_services.store_upload(
        dataset=dataset, file=io.BytesIO(CSV), filename="a.csv", actor="test", queue=False
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = explore_services.load_batch(batch_id=batch.pk, triggered_by="test")
    assert run is not None and run.status == RunStatus.SUCCEEDED
    return run


def valid(events: list[dict]) -> None:
    for event in events:
        assert problems(event) == [], event["eventType"]


def by_job(events: list[dict], job: str) -> list[dict]:
    return [event for event in events if event["job"]["name"] == job]


def test_a_load_and_promotions_send_start_then_complete_with_schema_lineage_and_quality(
    lineage_on, orders, django_capture_on_commit_callbacks
):
    receiver = lineage_on
    metric = MetricDefinition.objects.create(
        dataset=orders,
        slug="revenue",
        name="Revenue",
        aggregation="sum",
        value_field="amount",
        time_field="signup",
        grain="month",
        dimension_fields=["tier"],
    )
    ingest = load(orders, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        chart_run = promote_to_chart(dataset=orders, triggered_by="test")
    with django_capture_on_commit_callbacks(execute=True):
        navigate_run = promote_to_navigate(dataset=orders, triggered_by="test")
    assert chart_run.status == navigate_run.status == RunStatus.SUCCEEDED

    events = receiver.events
    valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("orders.ingest", "START"),
        ("orders.ingest", "COMPLETE"),
        ("orders.promote_chart", "START"),
        ("orders.promote_chart", "COMPLETE"),
        ("orders.promote_navigate", "START"),
        ("orders.promote_navigate", "COMPLETE"),
    ]
    assert {path for path, _ in receiver.requests} == {"/api/v1/lineage"}
    assert {headers["Authorization"] for _, headers in receiver.requests} == {"Bearer test-api-key"}
    # One run id per Atlas run, the same in its START and its end, and stable.
    for run, (start, end) in zip(
        (ingest, chart_run, navigate_run), zip(events[::2], events[1::2], strict=True), strict=True
    ):
        assert start["run"]["runId"] == end["run"]["runId"]
        assert start["run"]["runId"] == openlineage.run_id(run, namespace="atlas://test-site")
        assert uuid.UUID(start["run"]["runId"])
        assert end["run"]["facets"]["atlas_run"]["atlasRunId"] == run.pk
        assert start["eventTime"] <= end["eventTime"]
    assert {e["job"]["namespace"] for e in events} == {"atlas://test-site"}

    # The load: the stored files into explore, whose schema is the contract's fields.
    load_end = by_job(events, "orders.ingest")[1]
    assert [d["name"] for d in load_end["inputs"]] == ["landing.orders"]
    [explore] = load_end["outputs"]
    assert explore["name"] == "explore.orders"
    assert [f["name"] for f in explore["facets"]["schema"]["fields"]] == [
        "id",
        "email",
        "tier",
        "amount",
        "ssn",
        "signup",
        "notes",
    ]
    assert explore["outputFacets"]["outputStatistics"]["rowCount"] == 3

    # explore → chart: typed fields, column lineage with masking, the rules' results.
    chart_end = by_job(events, "orders.promote_chart")[1]
    [source] = chart_end["inputs"]
    [chart] = chart_end["outputs"]
    assert (source["name"], chart["name"]) == ("explore.orders", "chart.orders")
    types = {f["name"]: f["type"] for f in chart["facets"]["schema"]["fields"]}
    assert types == {
        "id": "integer",
        "email": "email",
        "tier": "enum",
        "amount": "decimal",
        "ssn": "string",
        "signup": "date",
        "notes": "string",
    }
    lineage = chart["facets"]["columnLineage"]["fields"]
    assert set(lineage) == set(types)
    [ssn_source] = lineage["ssn"]["inputFields"]
    assert (ssn_source["name"], ssn_source["field"]) == ("explore.orders", "ssn")
    [ssn_transformation] = ssn_source["transformations"]
    assert ssn_transformation["masking"] is True
    assert ssn_transformation["subtype"] == "TRANSFORMATION"
    [id_transformation] = lineage["id"]["inputFields"][0]["transformations"]
    assert (id_transformation["type"], id_transformation["subtype"]) == ("DIRECT", "IDENTITY")
    assertions = source["facets"]["dataQualityAssertions"]["assertions"]
    tier = [
        a for a in assertions if a.get("column") == "tier" and a["assertion"] == "allowed_values"
    ]
    assert tier == [
        {
            "assertion": "allowed_values",
            "column": "tier",
            "success": False,
            "severity": "warn",
            "name": "tier.allowed_values",
            "params": {"passed": 2, "failed": 1},
        }
    ]
    metrics = source["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 3
    id_metrics = metrics["columnMetrics"]["id"]
    assert (id_metrics["nullCount"], id_metrics["count"]) == (0, 3)
    assert chart["outputFacets"]["outputStatistics"]["rowCount"] == chart_run.rows_promoted
    figures = chart_end["run"]["facets"]["atlas_run"]
    assert (figures["rowsIn"], figures["rowsQuarantined"]) == (3, 1)
    assert 0 <= figures["qualityScore"] <= 1 and "validity" in figures["dimensionScores"]

    # chart → navigate: the metric's facts, their columns from chart's fields.
    navigate_end = by_job(events, "orders.promote_navigate")[1]
    assert [d["name"] for d in navigate_end["inputs"]] == ["chart.orders"]
    [facts] = navigate_end["outputs"]
    assert facts["name"] == f"navigate.{metric.slug}"
    assert [f["name"] for f in facts["facets"]["schema"]["fields"]] == [
        "period_start",
        "tier",
        "value",
        "record_count",
    ]
    columns = facts["facets"]["columnLineage"]
    value = columns["fields"]["value"]["inputFields"][0]
    assert (value["name"], value["field"]) == ("chart.orders", "amount")
    assert value["transformations"][0]["subtype"] == "AGGREGATION"
    assert columns["fields"]["period_start"]["inputFields"][0]["field"] == "signup"
    assert {(f["field"], f["transformations"][0]["subtype"]) for f in columns["dataset"]} == {
        ("signup", "GROUP_BY"),
        ("tier", "GROUP_BY"),
    }
    assert facts["outputFacets"]["outputStatistics"]["rowCount"] >= 1

    # No record's value anywhere: not the restricted field's, not a quarantined one's.
    assert not any(PLANTED.encode() in body for body in receiver.raw)
    assert not any(b"123-45-6789" in body or b"ann@example.com" in body for body in receiver.raw)


def test_a_failed_run_sends_fail_with_its_error_and_never_a_value(
    lineage_on, orders, django_capture_on_commit_callbacks
):
    receiver = lineage_on
    load(orders, django_capture_on_commit_callbacks)
    # A 'fail' gate and a threshold no run reaches: the promotion fails, keeping nothing.
    orders.gate_action = GateAction.FAIL
    orders.quality_threshold = 1
    orders.save()
    with django_capture_on_commit_callbacks(execute=True):
        failed = promote_to_chart(dataset=orders, triggered_by="test")
    assert failed.status == RunStatus.FAILED

    # An unexpected error that quoted the value it choked on, and PostgreSQL's detail.
    run = create_run(dataset=orders, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")
    with django_capture_on_commit_callbacks(execute=True):
        finish_run(
            run,
            RunStatus.FAILED,
            error=f'DataError: invalid input syntax for type numeric: "{PLANTED}"\n'
            f"DETAIL:  Key (ssn)=({PLANTED}) already exists.",
        )

    events = receiver.events
    valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events][2:] == [
        ("orders.promote_chart", "START"),
        ("orders.promote_chart", "FAIL"),
        ("orders.promote_navigate", "START"),
        ("orders.promote_navigate", "FAIL"),
    ]
    gate = events[3]["run"]["facets"]["errorMessage"]
    assert gate["programmingLanguage"] == "python"
    # Atlas's own reason: counts, a raw record's id, the field and its contract; no value.
    assert "fail the contract or rules" in gate["message"] and "raw record" in gate["message"]
    unexpected = events[5]["run"]["facets"]["errorMessage"]["message"]
    assert unexpected == "DataError: invalid input syntax for type numeric: '…'"
    assert events[3]["run"]["facets"]["atlas_run"]["rowsPromoted"] == 0
    assert not any(PLANTED.encode() in body for body in receiver.raw)


def test_nothing_is_sent_when_off(receiver, emitted, orders, django_capture_on_commit_callbacks):
    receiver.start()
    load(orders, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        promote_to_chart(dataset=orders, triggered_by="test")
    assert openlineage.transports() == []
    assert emitted == [] and receiver.events == []


def test_a_receiver_that_is_down_never_touches_the_run_and_gets_the_events_later(
    settings, receiver, emitted, orders, django_capture_on_commit_callbacks, caplog
):
    settings.ATLAS_OPENLINEAGE_URL = receiver.url  # not started: nothing listens
    caplog.set_level(logging.INFO, logger="orchestration")
    load(orders, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        run = promote_to_chart(dataset=orders, triggered_by="test")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.rows_promoted == 2
    assert len(emitted) == 2  # the load's and the promotion's task, each retried, then given up
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 2 and all("ConnectionError" in line for line in given_up)
    assert all(PLANTED not in r.getMessage() for r in caplog.records)
    assert all(receiver.url not in line for line in given_up)

    # Once it is up, what was not sent goes, in order, from where it stopped.
    receiver.start()
    assert openlineage.emit(run_id=run.pk, transport="http", sent=1) == 2
    assert [e["eventType"] for e in receiver.events] == ["COMPLETE"]
    assert openlineage.emit(run_id=run.pk, transport="http") == 2
    assert [e["eventType"] for e in receiver.events] == ["COMPLETE", "START", "COMPLETE"]


def test_a_delivery_that_fails_midway_says_how_many_went(settings, receiver, orders):
    settings.ATLAS_OPENLINEAGE_URL = receiver.url
    run = create_run(dataset=orders, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")
    finish_run(run, RunStatus.SUCCEEDED)
    with pytest.raises(openlineage.DeliveryError) as failure:
        openlineage.emit(run_id=run.pk, transport="http")
    assert (failure.value.sent, failure.value.reason) == (0, "ConnectionError")


def test_a_transport_it_cannot_build_is_a_failed_delivery_that_repeats_no_setting(settings, orders):
    settings.ATLAS_OPENLINEAGE_URL = "not a url secret-token"
    run = create_run(dataset=orders, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")
    finish_run(run, RunStatus.SUCCEEDED)
    with pytest.raises(openlineage.DeliveryError) as failure:
        openlineage.emit(run_id=run.pk, transport="http")
    assert failure.value.reason == "ValueError (the http setting)"
    assert "secret-token" not in str(failure.value)


def test_the_file_transport_appends_one_json_line_per_event(
    settings, tmp_path, emitted, orders, django_capture_on_commit_callbacks
):
    path = tmp_path / "lineage" / "events.jsonl"
    path.parent.mkdir()
    settings.ATLAS_OPENLINEAGE_FILE = str(path)
    load(orders, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        promote_to_chart(dataset=orders, triggered_by="test")
    lines = path.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("orders.ingest", "START"),
        ("orders.ingest", "COMPLETE"),
        ("orders.promote_chart", "START"),
        ("orders.promote_chart", "COMPLETE"),
    ]
    assert PLANTED not in path.read_text()
    assert "columnLineage" in events[3]["outputs"][0]["facets"]


def test_safe_error_keeps_the_first_line_without_quoted_parts():
    assert openlineage.safe_error("ValueError: could not convert string to float: 'x1'") == (
        "ValueError: could not convert string to float: '…'"
    )
    assert openlineage.safe_error(
        'IntegrityError: duplicate key value violates unique constraint "k"\n'
        "DETAIL:  Key (email)=(a@b.c) already exists."
    ) == ("IntegrityError: duplicate key value violates unique constraint '…'")
    assert openlineage.safe_error("Key (email)=(a@b.c) exists") == "Key '…' exists"
    assert openlineage.safe_error("") == ""
    assert len(openlineage.safe_error("x" * 2000)) == openlineage.ERROR_CHARACTERS


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_events_once_its_promotion_committed(
    customers, land, receiver, tmp_path
):
    # The whole path: the promotion in a worker, its end committed, the events' task sent
    # after that commit and taken up from Redis, the events POSTed to a receiver here.
    receiver.start()
    queue = f"atlas-openlineage-test-{uuid.uuid4().hex[:8]}"
    environment = {
        "ATLAS_PROMOTION_QUEUE": queue,
        "ATLAS_PROMOTION_WORKERS": "1",
        "ATLAS_OPENLINEAGE_URL": receiver.url,
        "ATLAS_OPENLINEAGE_NAMESPACE": "atlas://worker-test",
    }
    land(
        customers,
        [
            {"id": 1, "tier": "gold", "ssn": PLANTED, "signup": "2026-01-05"},
            {"id": 2, "tier": PLANTED, "ssn": "123-45-6789", "signup": "2026-01-06"},
        ],
    )
    with (
        start_worker(
            queue=queue, log_path=tmp_path / "worker.log", extra_env=environment
        ) as worker,
        override_settings(ATLAS_PROMOTION_QUEUE=queue),
    ):
        run = request_promotion(dataset=customers, triggered_by="test", to_layer=Layer.CHART)
        deadline = time.monotonic() + 60
        while len(receiver.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        worker.wait_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    events = receiver.events
    valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("orders.promote_chart", "START"),
        ("orders.promote_chart", "COMPLETE"),
    ]
    assert events[0]["run"]["runId"] == openlineage.run_id(run, namespace="atlas://worker-test")
    assert events[1]["run"]["facets"]["atlas_run"]["rowsQuarantined"] == 1
    assert not any(PLANTED.encode() in body for body in receiver.raw)
