"""Whether a dataset's promotion has anything to do: what "Promote now" asks first.

A promotion to chart takes the raw records above the chart watermark; the one to
navigate the chart records above the navigate watermark, and computes every period of
an active metric that has no fact yet. With none of the three there is nothing to
promote, and no run is made for it.
"""

from django.db.models import Exists, OuterRef

from chart.models import ChartRecord
from explore.models import RawRecord
from governance.pipeline.models import Dataset, Layer, Watermark
from navigate.models import Fact, MetricDefinition


def has_work_to_promote(*, dataset: Dataset) -> bool:
    """Raw records not yet in chart or quarantine, chart records not yet in the facts, or
    an active metric without facts (index probes only)."""
    marks = dict(Watermark.objects.filter(dataset=dataset).values_list("layer", "position"))
    if RawRecord.objects.filter(dataset=dataset, id__gt=marks.get(Layer.CHART, 0)).exists():
        return True
    if ChartRecord.objects.filter(dataset=dataset, id__gt=marks.get(Layer.NAVIGATE, 0)).exists():
        return True
    return (
        MetricDefinition.objects.filter(dataset=dataset, is_active=True)
        .exclude(Exists(Fact.objects.filter(metric=OuterRef("pk"))))
        .exists()
    )
