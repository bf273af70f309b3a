"""Charts over time: a series per name, a point per day, as the pages' script draws them."""

from dataclasses import dataclass
from datetime import date, timedelta

# How far back the charts over time look.
TREND_DAYS = 30
COMPLIANCE_DAYS = 90


@dataclass(frozen=True)
class Series:
    label: str
    data: list


@dataclass(frozen=True)
class TimeChart:
    labels: list[str]
    series: list[Series]

    def as_chart(self, *, kind: str = "line", stacked: bool = False, title: str = "") -> dict:
        """The JSON the page's chart script draws (see dashboards/js/charts.js)."""
        return {
            "type": kind,
            "title": title,
            "stacked": stacked,
            "labels": self.labels,
            "datasets": [{"label": s.label, "data": s.data} for s in self.series],
        }


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def daily_chart(since: date, until: date, per_series: dict[str, dict[date, int]]) -> TimeChart:
    """A series per name in the given order, a point per day from since to until (0 if none)."""
    days = _days(since, until)
    return TimeChart(
        labels=[d.isoformat() for d in days],
        series=[
            Series(name, [counts.get(d, 0) for d in days]) for name, counts in per_series.items()
        ],
    )
