"""The lineage page: datasets across explore, chart and navigate, with their classifications."""

from collections import defaultdict
from dataclasses import dataclass, field

from governance.pipeline.models import Dataset, Layer, LineageEdge
from governance.pipeline.selectors import field_classifications


@dataclass
class LineageNode:
    key: str  # "layer:name"
    layer: str
    name: str
    dataset: str
    classified: list[tuple[str, str | None]] = field(default_factory=list)  # (field, level)


@dataclass(frozen=True)
class LineageLink:
    source: str
    target: str
    transform: str
    # Field-level edges carrying a classified value on: "email (confidential)".
    carries: tuple[str, ...] = ()


@dataclass
class LineageGraph:
    nodes: list[LineageNode]
    links: list[LineageLink]


def lineage_graph() -> LineageGraph:
    """Datasets across explore, chart and navigate, with classifications along the way.

    Nodes: each active dataset in explore and in chart (once it reached chart), each of
    its metrics in navigate. A node lists the classified fields it holds: in explore the
    contract's levels, downstream the level each field still carries (None: removed by
    masking, encryption or aggregation) - see pipeline.selectors.field_classifications.
    """
    datasets = list(Dataset.objects.filter(is_active=True).order_by("slug"))
    edges = (
        LineageEdge.objects.filter(dataset__in=datasets, source_field="")
        .order_by("dataset_id", "source_layer", "target_name")
        .values_list("dataset_id", "source_layer", "target_layer", "target_name", "transform")
    )
    by_pk = {d.pk: d for d in datasets}
    nodes: dict[str, LineageNode] = {}
    links: list[LineageLink] = []

    def node(layer: str, name: str, dataset: Dataset) -> LineageNode:
        key = f"{layer}:{name}"
        if key not in nodes:
            nodes[key] = LineageNode(key, layer, name, dataset.slug)
        return nodes[key]

    for dataset in datasets:
        node(Layer.EXPLORE, dataset.slug, dataset)
    for dataset_id, source_layer, target_layer, target_name, transform in edges:
        dataset = by_pk[dataset_id]
        source = node(source_layer, dataset.slug, dataset)
        target_label = target_name if target_layer == Layer.NAVIGATE else dataset.slug
        target = node(target_layer, target_label or dataset.slug, dataset)
        links.append(LineageLink(source.key, target.key, transform))

    carried: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dataset in datasets:
        for item in field_classifications(dataset=dataset):
            if item.layer == Layer.NAVIGATE:
                metric, _, field_name = item.name.partition(".")
                key = f"{Layer.NAVIGATE}:{metric}"
            else:
                field_name, key = item.name, f"{item.layer}:{dataset.slug}"
            if key in nodes:
                nodes[key].classified.append((field_name, item.level))
            if item.level and item.layer != Layer.EXPLORE:
                upstream = Layer.EXPLORE if item.layer == Layer.CHART else Layer.CHART
                carried[(f"{upstream}:{dataset.slug}", key)].append(f"{field_name} ({item.level})")
    links = [
        LineageLink(
            link.source,
            link.target,
            link.transform,
            tuple(carried.get((link.source, link.target), ())),
        )
        for link in links
    ]
    return LineageGraph(list(nodes.values()), links)
