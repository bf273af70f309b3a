"""Number formatting for the dashboards (django.contrib.humanize is not installed)."""

from django import template

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
