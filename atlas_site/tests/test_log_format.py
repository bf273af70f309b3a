"""JSON log lines (ATLAS_LOG_FORMAT=json): the formatter, the task ids filter, the setting."""

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from atlas_site.celery import app
from atlas_site.log_format import JsonFormatter, TaskIdsFilter

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def make_record(message="promoted %s rows", args=(7,), exc_info=None, **extra):
    record = logging.LogRecord(
        "chart.services", logging.INFO, __file__, 10, message, args, exc_info
    )
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_object_on_one_line():
    line = JsonFormatter().format(make_record(run_id=12, dataset_id=3, batch_id="45"))
    assert "\n" not in line
    body = json.loads(line)
    assert body.pop("time").endswith("+00:00")
    assert body == {
        "level": "INFO",
        "logger": "chart.services",
        "message": "promoted 7 rows",
        "run": 12,
        "dataset": 3,
        "batch": 45,
    }


def test_ids_not_known_are_left_out():
    body = json.loads(JsonFormatter().format(make_record()))
    assert set(body) == {"time", "level", "logger", "message"}


def test_the_exception_text_is_included():
    try:
        raise ValueError("the contract has no field 'x'")
    except ValueError:
        record = make_record("promotion failed", (), exc_info=sys.exc_info())
    body = json.loads(JsonFormatter().format(record))
    assert body["message"] == "promotion failed"
    assert "Traceback (most recent call last)" in body["exception"]
    assert "ValueError: the contract has no field 'x'" in body["exception"]


def test_nothing_but_the_records_own_fields_is_written():
    record = make_record(
        run_id="ada@example.com",  # not an id: left out, not written
        dataset_id=True,
        email="ada@example.com",
        payload={"ssn": "123-45-6789"},
        args_of_task=["secret"],
    )
    line = JsonFormatter().format(record)
    body = json.loads(line)
    assert set(body) == {"time", "level", "logger", "message"}
    for value in ("ada@example.com", "123-45-6789", "secret", "email", "payload"):
        assert value not in line


@pytest.fixture
def captured():
    """A handler with the filter and formatter, on a logger of its own."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TaskIdsFilter())
    logger = logging.getLogger(f"atlas-test-json-{uuid.uuid4().hex[:8]}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, lines
    logger.removeHandler(handler)


def test_inside_a_task_its_id_and_run_id_are_added(captured):
    logger, lines = captured

    @app.task(name=f"atlas-test.log-{uuid.uuid4().hex[:8]}")
    def work(run_id: int, note: str = "") -> None:
        logger.info("working")
        logger.info("about another run", extra={"run_id": 99})

    result = work.apply(args=[42], kwargs={"note": "private text"}, task_id="task-1")
    assert result.successful(), result.traceback
    first, second = (json.loads(line) for line in lines)
    assert first["task"] == "task-1" and first["run"] == 42
    assert "private text" not in lines[0] and "note" not in first
    # An id given with extra= wins over the task's argument.
    assert second["run"] == 99 and second["task"] == "task-1"


def test_outside_a_task_the_filter_adds_nothing(captured):
    logger, lines = captured
    logger.info("no task here")
    assert set(json.loads(lines[0])) == {"time", "level", "logger", "message"}


def run_logging(log_format: str) -> subprocess.CompletedProcess:
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('atlas.check').warning('hello %s', 'there', extra={'run_id': 5})"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "atlas_site.settings.test",
        "ATLAS_LOG_FORMAT": log_format,
        "PYTHONPATH": str(BASE_DIR),
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_setting_turns_json_lines_on():
    result = run_logging("json")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "atlas.check" in line]
    assert len(lines) == 1
    body = json.loads(lines[0])
    assert body["message"] == "hello there" and body["run"] == 5
    assert body["logger"] == "atlas.check" and body["level"] == "WARNING"

    plain = run_logging("plain")
    assert plain.returncode == 0, plain.stderr
    assert "WARNING atlas.check hello there" in plain.stderr


def test_an_unknown_format_is_refused():
    result = run_logging("yaml")
    assert result.returncode != 0
    assert "ATLAS_LOG_FORMAT is plain or json" in result.stderr
