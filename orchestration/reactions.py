"""What comes next: the orchestration's answers to what the layers and governance say.

- a run is requested (governance.pipeline.signals.run_requested): send its task;
- a batch waits for its load (explore.signals.batch_waiting): send the load task;
- a shared promotion wants helpers (chart.signals.helpers_wanted): send its help tasks;
- a run ended (governance.pipeline.signals.run_finished): a landed batch of a dataset
  that promotes automatically is promoted; a promotion to chart that was asked to go on
  is followed by the promotion to navigate; a load or a promotion sends its OpenLineage
  events once its end commits, when a transport is set (orchestration.openlineage).

A follow-up run is created in the transaction that ends the run before it (finish_run),
so a worker dying in between leaves both or neither; tasks are sent once the transaction
that asked for them commits. Connected by OrchestrationConfig.ready().
"""

import logging
from functools import partial

from django.db import transaction
from django.dispatch import receiver

from chart.signals import helpers_wanted
from explore.signals import batch_waiting
from governance.pipeline.models import Layer, Run, RunKind, RunStatus
from governance.pipeline.services import request_navigate_promotion, request_promotion
from governance.pipeline.signals import run_finished, run_requested
from orchestration import dispatch, openlineage
from orchestration.tasks import emit_openlineage

logger = logging.getLogger(__name__)

BATCH_LANDED_TRIGGER = "batch-landed"


@receiver(run_requested, dispatch_uid="orchestration.send_requested_run")
def send_requested_run(sender, run: Run, countdown: float | None = None, **kwargs) -> None:
    dispatch.send_run_task_on_commit(run, countdown=countdown)


@receiver(helpers_wanted, dispatch_uid="orchestration.send_promotion_helpers")
def send_promotion_helpers(sender, run: Run, helpers: int, **kwargs) -> None:
    dispatch.send_promotion_helpers(run, helpers)


@receiver(batch_waiting, dispatch_uid="orchestration.queue_waiting_batch")
def queue_waiting_batch(sender, batch, via: str = "upload", **kwargs) -> None:
    dispatch.queue_load(batch.pk, via=via)


@receiver(run_finished, dispatch_uid="orchestration.queue_next_step")
def queue_next_step(sender, run: Run, **kwargs) -> None:
    if run.status != RunStatus.SUCCEEDED:
        return
    dataset = run.dataset
    if dataset is None:
        return
    if run.kind == RunKind.INGEST:
        if dataset.auto_promote and (run.detail or {}).get("rows_parsed"):
            try:
                with transaction.atomic():  # a failure here leaves the load's end standing
                    request_promotion(dataset=dataset, triggered_by=BATCH_LANDED_TRIGGER)
            except Exception:  # the load stands; the schedule or a steward promotes later
                logger.exception("could not request the promotion of %s", dataset.slug)
    elif run.kind == RunKind.PROMOTE_CHART and (run.detail or {}).get("to_layer") == Layer.NAVIGATE:
        request_navigate_promotion(dataset=dataset, triggered_by=f"run {run.pk}")


@receiver(run_finished, dispatch_uid="orchestration.emit_openlineage")
def queue_openlineage_events(sender, run: Run, **kwargs) -> None:
    if run.kind not in openlineage.EMITTED_KINDS or run.dataset_id is None:
        return
    # On the promotions' queue, as the dashboards' refresh when a run ends: a worker that
    # takes up runs is there wherever runs end, and an attempt is one bounded request.
    options = dispatch.promotion_task_options()
    for transport in openlineage.transports():  # none: off
        # After the commit, and robust: the events are built from what the run committed,
        # and a broker outage loses them without touching the run.
        transaction.on_commit(
            partial(emit_openlineage.apply_async, (run.pk, transport), **options), robust=True
        )
