"""JSON log lines (ATLAS_LOG_FORMAT=json): one object per line, for a log collector.

Each line holds the record's own fields only: time (UTC, ISO 8601), level, logger,
message (the formatted message, as the plain format shows it), the exception's text when
there is one, and, when known, the ids of the run, dataset, batch and Celery task it is
about. Nothing else a record may carry (another `extra=` key, a task's arguments) is
written: the ids are whole numbers or Celery's task id, never a value.

The ids come from `extra={"run_id": …, "dataset_id": …, "batch_id": …}` on the call, or,
inside a Celery task, from `TaskIdsFilter`: the task's id, and its `run_id`, `batch_id`
or `dataset_id` argument (every Atlas task takes one of them).
"""

import inspect
import json
import logging
from datetime import UTC, datetime
from typing import Any

from celery import current_task

# Record attribute -> key in the line.
ID_FIELDS = {"run_id": "run", "dataset_id": "dataset", "batch_id": "batch", "task_id": "task"}
TASK_ARGUMENTS = ("run_id", "dataset_id", "batch_id")


def _id(value: Any) -> int | str | None:
    """An id as logged: a whole number, or a short token of letters, digits and dashes
    (Celery's task ids are UUIDs); anything else is not an id and is left out."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and 0 < len(value) <= 64:
        if value.isdigit():
            return int(value)
        if all(c.isascii() and (c.isalnum() or c == "-") for c in value):
            return value
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, key in ID_FIELDS.items():
            value = _id(getattr(record, attribute, None))
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a message is already text; this only guards odd ids or types.
        return json.dumps(line, ensure_ascii=False, default=str)


class TaskIdsFilter(logging.Filter):
    """Inside a Celery task, sets the record's task id and the run, dataset or batch id
    the task was called with, unless the call gave them with `extra=`. Lets every record
    through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            ids = current_task_ids()
        except Exception:  # never lose a log line for want of its ids
            ids = {}
        for attribute, value in ids.items():
            if getattr(record, attribute, None) is None:
                setattr(record, attribute, value)
        return True


def current_task_ids() -> dict[str, Any]:
    """task_id and the id arguments of the Celery task running in this thread, if any."""
    if current_task is None or not getattr(current_task, "request", None):
        return {}
    request = current_task.request
    task_id = getattr(request, "id", None)
    if task_id is None:
        return {}
    ids: dict[str, Any] = {"task_id": task_id}
    try:
        bound = inspect.signature(current_task.run).bind_partial(
            *(request.args or ()), **(request.kwargs or {})
        )
    except (TypeError, ValueError):
        return ids
    for name in TASK_ARGUMENTS:
        if name in bound.arguments:
            ids[name] = bound.arguments[name]
    return ids
