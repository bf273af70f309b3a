"""Form fields shared by Atlas's admin forms."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from atlas_site.formats import iso_duration, plain_decimal

MAX_JSON_DEPTH = 64


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text, counted without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field, refusing JSON nested deeper than MAX_JSON_DEPTH.

    Found by fuzzing the admin: JSON nested about a thousand levels deep makes
    json.loads, or the validators that print the value, recurse past Python's limit,
    and the admin answered 500 instead of a form error.
    """

    def _too_deep(self, value) -> int | None:
        if isinstance(value, str):
            depth = json_depth(value)
            if depth > MAX_JSON_DEPTH:
                return depth
        return None

    def to_python(self, value):
        depth = self._too_deep(value)
        if depth is not None:
            raise ValidationError(
                "This JSON nests %(depth)s levels deep; at most %(limit)s are allowed.",
                code="too_deep",
                params={"depth": depth, "limit": MAX_JSON_DEPTH},
            )
        return super().to_python(value)

    def bound_data(self, data, initial):
        if self._too_deep(data) is not None:
            return InvalidJSONInput(data)  # shown back as typed, as for invalid JSON
        return super().bound_data(data, initial)


class IsoDurationField(forms.DurationField):
    """A duration shown as short ISO 8601 (P7D, not 7 00:00:00); either form is accepted."""

    def prepare_value(self, value):
        if isinstance(value, timedelta):
            return iso_duration(value)
        return super().prepare_value(value)


class PlainDecimalField(forms.DecimalField):
    """A decimal shown as written (10000.5, 0), not at the column's scale or with an exponent."""

    def prepare_value(self, value):
        if isinstance(value, Decimal):
            return plain_decimal(value)
        return super().prepare_value(value)
