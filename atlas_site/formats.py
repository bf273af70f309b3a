"""Values written as people write them: durations in short ISO 8601, decimals as written."""

from datetime import timedelta
from decimal import Decimal


def iso_duration(value: timedelta) -> str:
    """P7D, PT6H, P1DT12H30M, PT1.5S, PT0S (Django's own writes P7DT00H00M00S)."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    minutes, seconds = divmod(value.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if value.microseconds:
        second_part = f"{seconds}.{value.microseconds:06d}".rstrip("0") + "S"
    else:
        second_part = f"{seconds}S" if seconds else ""
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + second_part
    days = f"{value.days}D" if value.days else ""
    if not days and not time:
        return "PT0S"
    return f"{sign}P{days}{'T' + time if time else ''}"


def plain_decimal(value: Decimal) -> str:
    """10000.5 for Decimal('10000.5000000000'), 0 for Decimal('0E-10'): no exponent, no
    trailing zeros the column's scale added."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
