"""The reporting views follow what they are built from (navigate.reporting): a contract
field, a dataset (its slug, its reader groups), a classification level or a metric
definition saved or deleted rebuilds them once the transaction commits
(orchestration.dispatch.queue_reporting_rebuild). Connected by OrchestrationConfig.ready().
"""

from django.db.models.signals import m2m_changed, post_delete, post_save

from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import Dataset, DatasetField
from navigate.models import MetricDefinition
from orchestration import dispatch

REPORTING_SOURCES = (Dataset, DatasetField, ClassificationLevel, MetricDefinition)


def rebuild_reporting_views(sender, raw: bool = False, **kwargs) -> None:
    if not raw:  # fixtures being loaded: the migrate or rebuild that follows builds them
        dispatch.queue_reporting_rebuild()


def rebuild_reporting_views_for_groups(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        dispatch.queue_reporting_rebuild()


def connect() -> None:
    for model in REPORTING_SOURCES:
        label = model._meta.label_lower
        post_save.connect(
            rebuild_reporting_views, sender=model, dispatch_uid=f"reporting.saved.{label}"
        )
        post_delete.connect(
            rebuild_reporting_views, sender=model, dispatch_uid=f"reporting.deleted.{label}"
        )
    m2m_changed.connect(
        rebuild_reporting_views_for_groups,
        sender=Dataset.reader_groups.through,
        dispatch_uid="reporting.reader_groups",
    )
