"""Number and duration formatting for the dashboards (django.contrib.humanize is not installed)."""

from datetime import timedelta

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


@register.filter
def iso_duration(value) -> str:
    """A timedelta as short ISO 8601 (P7D, PT6H, P1DT12H, PT0S); anything else as is."""
    if not isinstance(value, timedelta):
        return "" if value is None else str(value)
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    minutes, seconds = divmod(value.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if value.microseconds:
        second_part = f"{seconds}.{value.microseconds:06d}".rstrip("0") + "S"
    else:
        second_part = f"{seconds}S" if seconds else ""
    time = "".join(
        part
        for part in (f"{hours}H" if hours else "", f"{minutes}M" if minutes else "", second_part)
        if part
    )
    days = f"{value.days}D" if value.days else ""
    if not days and not time:
        return "PT0S"
    return f"{sign}P{days}{'T' + time if time else ''}"


@register.filter
def stale_at(card, now) -> bool:
    """Whether a home page dataset card is past its freshness target at `now`."""
    return card.stale(now)
