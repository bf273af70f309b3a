"""Alerts stewards and operators can rely on: rules evaluated, alerts opened, repeated and
resolved, notifications delivered by e-mail or webhook and retried with backoff.

- figures: what the rules are evaluated against, every dataset in one query of index
  probes over the pipeline's own bookkeeping (runs, quality scores, suggestions), never a
  scan of the data layers; the platform's own figures.
- conditions: whether a rule holds, per dataset or for the platform, and its summary.
- evaluation: alerts opened, repeated, resolved; notifications queued per channel and
  subscriber (`evaluate_alerts`, the task beat sends every minute).
- delivery: e-mail and webhooks, retried with backoff; a channel's test message.
- messages: what a notification says.

Messages carry dataset slugs, rule names, counts and a link, never a value of a record; a
delivery's error is kept as its kind (and HTTP status), never the receiver's answer. A
failed delivery never raises into the pipeline.
"""

from orchestration.alerts.conditions import Condition, conditions
from orchestration.alerts.delivery import backoff, deliver_due, send_test_message
from orchestration.alerts.evaluation import EVALUATED, Evaluation, evaluate_alerts, subscribers
from orchestration.alerts.figures import (
    DEFAULT_ROWS_COUNTED,
    dataset_figures,
    platform_figures,
)

__all__ = [
    "DEFAULT_ROWS_COUNTED",
    "EVALUATED",
    "Condition",
    "Evaluation",
    "backoff",
    "conditions",
    "dataset_figures",
    "deliver_due",
    "evaluate_alerts",
    "platform_figures",
    "send_test_message",
    "subscribers",
]
