"""How the pipeline's admin pages show figures: durations as a person reads them (a
dataset's recent runs, a run's page) and quality scores over the runs as sparklines (a
dataset's overview)."""

from datetime import timedelta
from decimal import Decimal

from governance.quality import selectors as quality_selectors
from governance.quality.models import DimensionCode

SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def sparkline(values: list[Decimal | None]) -> str:
    """SVG polyline points of scores (0 to 1) drawn left to right; gaps are skipped."""
    if not values:
        return ""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{SPARK_HEIGHT - float(value) * SPARK_HEIGHT:.1f}"
        for index, value in enumerate(values)
        if value is not None
    )


def spark_end(values: list[Decimal | None]) -> tuple[str, str] | None:
    """Where the latest value sits: marked with a dot, so a single run still shows."""
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    for index in range(len(values) - 1, -1, -1):
        if values[index] is not None:
            y = SPARK_HEIGHT - float(values[index]) * SPARK_HEIGHT
            return f"{index * step:.1f}", f"{y:.1f}"
    return None


def duration_text(duration: timedelta | None) -> str:
    """'0.12 s', '3 min 05 s', '2 h 01 min': how long, as a person reads it."""
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def quality_trend(points: list[quality_selectors.ScorePoint]) -> list[dict]:
    """One row per dimension (and overall): its values over the runs, and a sparkline."""
    series = [("overall", "Overall", [p.overall for p in points])] + [
        (code, label, [p.dimensions.get(code) for p in points])
        for code, label in DimensionCode.choices
    ]
    return [
        {
            "code": code,
            "label": label,
            "values": values,
            "latest": next((v for v in reversed(values) if v is not None), None),
            "points": sparkline(values),
            "end": spark_end(values),
        }
        for code, label, values in series
        if any(v is not None for v in values)
    ]
