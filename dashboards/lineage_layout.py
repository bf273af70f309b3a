"""Where the lineage graph's boxes and arrows go: three columns drawn as inline SVG.

Positions are worked out here so the page needs no script for the graph; the SVG uses
presentation attributes and classes only (no style attributes), so a strict CSP holds.
"""

from dataclasses import dataclass

from django.utils.text import slugify

from dashboards.selectors.lineage import LineageGraph, LineageNode
from governance.pipeline.models import Layer

COLUMNS = (Layer.EXPLORE, Layer.CHART, Layer.NAVIGATE)
NODE_WIDTH = 230
COLUMN_GAP = 110
HEADER = 30
LINE = 18
PADDING = 10
GAP = 18
MAX_LINES = 8


@dataclass(frozen=True)
class Box:
    node: LineageNode
    x: int
    y: int
    height: int
    lines: list[tuple[int, str, str]]  # (y, text, css class)


@dataclass(frozen=True)
class Arrow:
    path: str
    label: str
    label_x: int
    label_y: int
    carries: bool
    title: str


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    columns: list[tuple[int, str]]  # (x of the column's middle, heading)
    boxes: list[Box]
    arrows: list[Arrow]
    node_width: int = NODE_WIDTH


def _lines(node: LineageNode) -> list[tuple[str, str]]:
    lines = []
    for field_name, level in node.classified[:MAX_LINES]:
        if level:
            lines.append((f"{field_name}: {level}", f"level level-{slugify(level)}"))
        else:
            lines.append((f"{field_name}: protected", "level level-removed"))
    if len(node.classified) > MAX_LINES:
        lines.append((f"+{len(node.classified) - MAX_LINES} more", "level"))
    return lines


def layout(graph: LineageGraph) -> Drawing:
    boxes: dict[str, Box] = {}
    heights = []
    for column, layer in enumerate(COLUMNS):
        x = PADDING + column * (NODE_WIDTH + COLUMN_GAP)
        y = PADDING + HEADER
        for node in (n for n in graph.nodes if n.layer == layer):
            lines = _lines(node)
            height = HEADER + LINE * len(lines) + PADDING
            text_lines = [
                (y + HEADER + LINE * (n + 1) - 4, text, css) for n, (text, css) in enumerate(lines)
            ]
            boxes[node.key] = Box(node, x, y, height, text_lines)
            y += height + GAP
        heights.append(y)
    arrows = []
    for link in graph.links:
        source, target = boxes.get(link.source), boxes.get(link.target)
        if source is None or target is None:
            continue
        x1, y1 = source.x + NODE_WIDTH, source.y + HEADER // 2
        x2, y2 = target.x, target.y + HEADER // 2
        middle = (x1 + x2) // 2
        carried = ", ".join(link.carries)
        arrows.append(
            Arrow(
                path=f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2 - 6},{y2}",
                label=link.transform,
                label_x=middle,
                label_y=(y1 + y2) // 2 - 4,
                carries=bool(link.carries),
                title=(
                    f"{link.transform}; classification carried on: {carried}"
                    if carried
                    else f"{link.transform}; no classified value carried on"
                ),
            )
        )
    width = 2 * PADDING + len(COLUMNS) * NODE_WIDTH + (len(COLUMNS) - 1) * COLUMN_GAP
    columns = [
        (PADDING + n * (NODE_WIDTH + COLUMN_GAP) + NODE_WIDTH // 2, str(Layer(layer).label))
        for n, layer in enumerate(COLUMNS)
    ]
    return Drawing(width, max(heights, default=0) + PADDING, columns, list(boxes.values()), arrows)
