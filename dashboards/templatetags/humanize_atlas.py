"""Number and duration formatting for the dashboards (django.contrib.humanize is not installed)."""

from datetime import timedelta

from django import template

from atlas_site import formats

register = template.Library()


@register.filter
def thousands(value) -> str:
    """12345678 -> '12,345,678'; anything that is not a number is shown as it is."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def megabytes(value) -> str:
    try:
        return f"{int(value) / 1024**2:,.1f} MB"
    except (TypeError, ValueError):
        return ""


@register.filter
def iso_duration(value) -> str:
    """A timedelta as short ISO 8601 (P7D, PT6H); anything else as is."""
    if not isinstance(value, timedelta):
        return "" if value is None else str(value)
    return formats.iso_duration(value)


@register.filter
def stale_at(card, now) -> bool:
    """Whether a home page dataset card is past its freshness target at `now`."""
    return card.stale(now)
