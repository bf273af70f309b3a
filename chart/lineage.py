"""Lineage explore → chart: the dataset's edge and one per field, with its transform."""

from chart.judging import field_protections
from governance.pipeline.models import Dataset, Layer, LineageEdge, Run, Transform


def record_chart_lineage(*, dataset: Dataset, run: Run) -> None:
    """Dataset- and field-level lineage explore → chart, with the transform applied."""
    protections = field_protections(dataset)
    edges = [("", "", Transform.TYPED)] + [
        (name, name, protection.transform) for name, protection in protections.items()
    ]
    for source_field, target_name, transform in edges:
        # A field whose protection changed gets a new edge; the old one stays as history.
        LineageEdge.objects.update_or_create(
            dataset=dataset,
            source_layer=Layer.EXPLORE,
            source_field=source_field,
            target_layer=Layer.CHART,
            target_name=target_name,
            transform=transform,
            defaults={"run": run},
        )
