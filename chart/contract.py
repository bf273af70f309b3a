"""A dataset's contract, compiled once per run and applied to each raw payload.

`CompiledContract.check(payload)` returns the typed values, the fields kept aside
(not in the contract) and every reason the record fails (a RuleFailure, under the
contract's own names for its rules: "type", "required", "range"...). A reason's
message says what was expected, never what was received: the value goes in its
excerpt only, which the promotion protects at the field's level before storing it.
Typed values are JSON-ready: integers and booleans as such, decimals as strings (no
float rounding), dates and datetimes as ISO 8601 (datetimes in UTC).
"""

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

import re2
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from atlas_site.formats import plain_decimal
from governance.pipeline.models import DatasetField, FieldType
from governance.quality.rules import RuleFailure

EXCERPT_LENGTH = 40

# The longest address Django's EmailValidator accepts (RFC 3696, section 3).
EMAIL_MAX_LENGTH = 320
# A plain address: letters, digits and ._%+- before the @, then a dotted host name
# whose labels neither start nor end with a dash and whose top-level domain is letters.
# Every such address is one Django's EmailValidator accepts, so checking this first
# spares nearly every value the validator's slower regexes; anything else (quoted
# local parts, IP literals, international domains, mistakes) still goes to Django.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,63}"
)

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class CoercionError(ValueError):
    """A value that cannot become the contract's type; the message says why."""


@dataclass
class CheckedRecord:
    data: dict[str, Any]
    extras: dict[str, Any]
    reasons: list[RuleFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


def to_string(value: Any) -> str:
    if type(value) is str:  # the common case, first
        return value
    if isinstance(value, (dict, list)):
        raise CoercionError("expected text, got a nested object or list")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise CoercionError("expected an integer, got a number that is not whole")
    text = to_string(value).strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        raise CoercionError("expected an integer") from None


def to_decimal(value: Any) -> str:
    if isinstance(value, bool):
        raise CoercionError("expected a decimal number, got a boolean")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise CoercionError("expected a decimal number") from None
    if not number.is_finite():
        raise CoercionError("expected a finite decimal number")
    return str(number)


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = to_string(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CoercionError("expected true/false, yes/no or 1/0")


def to_date(value: Any) -> str:
    text = to_string(value).strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise CoercionError("expected a date as YYYY-MM-DD") from None


def to_datetime(value: Any) -> str:
    text = to_string(value).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CoercionError("expected an ISO 8601 date and time") from None
    # A time without a zone is taken as UTC, the zone Atlas stores in.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def to_email(value: Any) -> str:
    text = to_string(value).strip()
    if len(text) > EMAIL_MAX_LENGTH or not _PLAIN_EMAIL.fullmatch(text):
        try:
            validate_email(_as_ascii_local_part(text))
        except ValidationError:
            raise CoercionError("expected an email address") from None
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def _as_ascii_local_part(address: str) -> str:
    """The address with each letter beyond ASCII in its local part written as `a`.

    RFC 6531 lets a local part hold any character beyond ASCII where RFC 5322 allows a
    letter (`kofi.garcía1@example.org`); Django's validator knows only ASCII local parts,
    so it judges the address with those characters standing for a letter. Spaces, controls
    and invisible formatting characters stay, and fail as they should.
    """
    local, at, domain = address.rpartition("@")
    if not at or local.isascii():
        return address
    letters = "".join(
        "a" if not char.isascii() and unicodedata.category(char)[0] not in "CZ" else char
        for char in local
    )
    return f"{letters}@{domain}"


COERCERS: dict[str, Callable[[Any], Any]] = {
    FieldType.STRING: to_string,
    FieldType.INTEGER: to_integer,
    FieldType.DECIMAL: to_decimal,
    FieldType.BOOLEAN: to_boolean,
    FieldType.DATE: to_date,
    FieldType.DATETIME: to_datetime,
    FieldType.EMAIL: to_email,
    FieldType.ENUM: lambda value: to_string(value).strip(),
}


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


@dataclass(frozen=True)
class FieldRule:
    """One contract field, ready to apply."""

    name: str
    data_type: str
    required: bool = False
    max_length: int | None = None
    allowed_values: frozenset[str] = frozenset()
    pattern: Any = None  # a compiled RE2 pattern, matched against the whole value
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    @classmethod
    def from_field(cls, dataset_field: DatasetField) -> "FieldRule":
        return cls(
            name=dataset_field.name,
            data_type=dataset_field.data_type,
            required=dataset_field.required,
            max_length=dataset_field.max_length,
            allowed_values=frozenset(dataset_field.allowed_values or ()),
            pattern=re2.compile(dataset_field.pattern) if dataset_field.pattern else None,
            minimum=dataset_field.minimum,
            maximum=dataset_field.maximum,
        )

    @cached_property
    def _coerce(self) -> Callable[[Any], Any]:
        return COERCERS[self.data_type]

    @cached_property
    def _has_constraints(self) -> bool:
        """Whether anything beyond the type is to check (most fields: no)."""
        return bool(
            self.max_length is not None
            or self.allowed_values
            or self.pattern is not None
            or self.minimum is not None
            or self.maximum is not None
        )

    def _reason(self, rule: str, message: str, value: Any) -> RuleFailure:
        return RuleFailure(self.name, rule, message, _excerpt(to_excerpt(value)))

    def check(self, value: Any) -> tuple[Any, list[RuleFailure]]:
        """The typed value (None when absent or invalid) and the reasons it fails."""
        if value is None or (isinstance(value, str) and not value.strip()):  # blank
            if self.required:
                return None, [RuleFailure(self.name, "required", "a value is required")]
            return None, []
        try:
            typed = self._coerce(value)
        except CoercionError as error:
            return None, [self._reason("type", str(error), value)]
        if not self._has_constraints:
            return typed, []
        reasons = []
        if self.max_length is not None and isinstance(typed, str) and len(typed) > self.max_length:
            reasons.append(
                self._reason(
                    "max_length", f"longer than {self.max_length} characters ({len(typed)})", value
                )
            )
        if self.allowed_values and str(typed) not in self.allowed_values:
            allowed = ", ".join(sorted(self.allowed_values))
            reasons.append(self._reason("allowed_values", f"not one of: {allowed}", value))
        if self.pattern is not None and not self.pattern.fullmatch(str(typed)):
            reasons.append(self._reason("pattern", "does not match the contract's pattern", value))
        if self.minimum is not None or self.maximum is not None:
            reasons.extend(self._range_reasons(typed, value))
        return (None if reasons else typed), reasons

    def _range_reasons(self, typed: Any, value: Any) -> list[RuleFailure]:
        if self.data_type not in (FieldType.INTEGER, FieldType.DECIMAL):
            return []
        number = Decimal(str(typed))
        if self.minimum is not None and number < self.minimum:
            return [
                self._reason("range", f"below the minimum {plain_decimal(self.minimum)}", value)
            ]
        if self.maximum is not None and number > self.maximum:
            return [
                self._reason("range", f"above the maximum {plain_decimal(self.maximum)}", value)
            ]
        return []


def to_excerpt(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


class CompiledContract:
    """All of a dataset's field rules; applies them to one payload at a time."""

    def __init__(self, rules: Iterable[FieldRule]):
        self.rules = list(rules)
        self.names = frozenset(rule.name for rule in self.rules)
        self._checks = [(rule.name, rule.check) for rule in self.rules]

    @classmethod
    def for_dataset(cls, dataset) -> "CompiledContract":
        fields = DatasetField.objects.filter(dataset=dataset)
        return cls(FieldRule.from_field(f) for f in fields.order_by("position", "name"))

    def check(self, payload: Any) -> CheckedRecord:
        if not isinstance(payload, dict):
            return CheckedRecord(
                data={},
                extras={},
                reasons=[
                    RuleFailure(
                        "",
                        "shape",
                        "the record is not an object of named fields",
                        _excerpt(to_excerpt(payload)),
                    )
                ],
            )
        data, reasons = {}, []
        for name, check in self._checks:
            typed, field_reasons = check(payload.get(name))
            data[name] = typed
            if field_reasons:
                reasons.extend(field_reasons)
        extras = {key: value for key, value in payload.items() if key not in self.names}
        return CheckedRecord(data=data, extras=extras, reasons=reasons)
