"""Quality rules: those a contract implies, and how every rule judges one typed record.

Contract rules are derived from the dataset's fields (`sync_contract_rules`), so
stewards see them next to their own rules and every failure is counted under one of
the six dimensions. The contract check (chart.contract) reports failures with the
same rule names, so a reason maps straight onto its rule.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import re2
from django.db import transaction

from governance.pipeline.models import Dataset, DatasetField
from governance.quality.kinds import COMPARISONS, DIMENSION_OF_KIND
from governance.quality.models import QualityDimension, QualityRule, RuleKind
from governance.quality.models import RuleOrigin as Origin

# Names the contract check gives its failures -> rule kinds.
KIND_OF_CONTRACT_REASON = {
    "required": RuleKind.NOT_NULL,
    "type": RuleKind.TYPE,
    "shape": RuleKind.TYPE,
    "max_length": RuleKind.MAX_LENGTH,
    "allowed_values": RuleKind.ALLOWED_VALUES,
    "pattern": RuleKind.PATTERN,
    "range": RuleKind.RANGE,
    "unique": RuleKind.UNIQUE,
    "freshness": RuleKind.FRESHNESS,
}


def contract_rule_specs(dataset: Dataset) -> list[tuple[str, str, dict]]:
    """(field_name, kind, parameters) for every rule the contract implies."""
    specs: list[tuple[str, str, dict]] = []
    for contract_field in DatasetField.objects.filter(dataset=dataset).order_by("position", "name"):
        name = contract_field.name
        specs.append((name, RuleKind.TYPE, {"type": contract_field.data_type}))
        if contract_field.required:
            specs.append((name, RuleKind.NOT_NULL, {}))
        if contract_field.max_length is not None:
            specs.append((name, RuleKind.MAX_LENGTH, {"max_length": contract_field.max_length}))
        if contract_field.allowed_values:
            specs.append(
                (name, RuleKind.ALLOWED_VALUES, {"values": list(contract_field.allowed_values)})
            )
        if contract_field.pattern:
            specs.append((name, RuleKind.PATTERN, {"regex": contract_field.pattern}))
        if contract_field.minimum is not None or contract_field.maximum is not None:
            bounds = {
                "min": None if contract_field.minimum is None else str(contract_field.minimum),
                "max": None if contract_field.maximum is None else str(contract_field.maximum),
            }
            specs.append((name, RuleKind.RANGE, bounds))
        if contract_field.unique:
            specs.append((name, RuleKind.UNIQUE, {}))
    if dataset.business_key:
        specs.append(("", RuleKind.UNIQUE, {"fields": list(dataset.business_key)}))
    if dataset.event_time_field:
        specs.append(
            (
                dataset.event_time_field,
                RuleKind.FRESHNESS,
                {"max_age_seconds": int(dataset.freshness_target.total_seconds())},
            )
        )
    return specs


@transaction.atomic
def sync_contract_rules(*, dataset: Dataset) -> list[QualityRule]:
    """Make the dataset's contract rules match its contract; steward rules are untouched."""
    dimensions = {dimension.code: dimension for dimension in QualityDimension.objects.all()}
    existing = {
        (rule.field_name, rule.kind): rule
        for rule in QualityRule.objects.filter(dataset=dataset, origin=Origin.CONTRACT)
    }
    kept = []
    for field_name, kind, parameters in contract_rule_specs(dataset):
        rule = existing.pop((field_name, kind), None)
        if rule is None:
            rule = QualityRule(
                dataset=dataset, field_name=field_name, kind=kind, origin=Origin.CONTRACT
            )
        if rule.pk is None or rule.parameters != parameters or not rule.is_active:
            rule.parameters = parameters
            rule.dimension = dimensions[DIMENSION_OF_KIND[kind]]
            rule.is_active = True
            rule.save()
        kept.append(rule)
    # A constraint removed from the contract stops being checked; its history stays.
    QualityRule.objects.filter(pk__in=[rule.pk for rule in existing.values()]).update(
        is_active=False
    )
    return kept


@dataclass(slots=True)
class RuleFailure:
    """A record failing a rule: the one shape of a failure, from its check to its storage.

    Made by the contract check (chart.contract, under the contract's own names for its
    rules), by a record rule here, and by the promotion's uniqueness check; stored as a
    quarantined record's reasons, a warn-gate record's issues and a check result's
    examples (`as_reason`). The message names fields and what was expected, never a
    value. Where a failure is found, `value_excerpt` is the raw excerpt and
    `excerpt_fields` the fields whose level protects it (both fields of a cross-field
    rule; none said: the failure's own field); the promotion stores a failure whose
    excerpt is protected at that level. `quarantines`: whether the failure holds its
    record back (one of a dimension that is only measured does not).
    """

    field: str
    rule: str
    message: str
    value_excerpt: str = ""
    excerpt_fields: tuple[str, ...] = ()
    quarantines: bool = True

    def as_reason(self) -> dict[str, str]:
        """What chart keeps of it: a reason of a quarantined record, an example of a rule."""
        return {
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
            "value_excerpt": self.value_excerpt,
        }


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _age(age: timedelta) -> str:
    hours = int(age.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"


def _moment(value: Any) -> datetime | None:
    """A date or datetime value as an aware datetime (a bare date is its UTC midnight)."""
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class RecordRuleCheck:
    """A rule judged on a typed record (steward rules, contract freshness); compiled per run."""

    rule: QualityRule
    now: datetime
    _regex: Any = field(default=None, init=False)

    def __post_init__(self):
        if self.rule.kind == RuleKind.PATTERN:
            self._regex = re2.compile(self.rule.parameters["regex"])

    def check(self, data: dict[str, Any]) -> RuleFailure | None:
        rule, parameters = self.rule, self.rule.parameters or {}
        value = data.get(rule.field_name) if rule.field_name else None
        if rule.kind == RuleKind.NOT_NULL:
            return None if value not in (None, "") else self._fail("a value is required", value)
        if rule.kind == RuleKind.CROSS_FIELD:
            return self._cross_field(data, parameters)
        if value in (None, ""):
            return None  # absence is completeness's business
        judge = self._VALUE_CHECKS.get(rule.kind)
        return judge(self, value, parameters) if judge is not None else None

    def _cross_field(self, data: dict[str, Any], parameters: dict) -> RuleFailure | None:
        left, right = data.get(parameters["left"]), data.get(parameters["right"])
        if left is None or right is None:
            return None
        left_n, right_n = _number(left), _number(right)
        if left_n is not None and right_n is not None:
            left, right = left_n, right_n
        if COMPARISONS[parameters["op"]](left, right):
            return None
        return self._fail(
            f"{parameters['left']} {parameters['op']} {parameters['right']} does not hold",
            f"{left} vs {right}",
            fields=(parameters["left"], parameters["right"]),
        )

    # The checks of a value that is there, one per kind of rule (_VALUE_CHECKS).

    def _in_list(self, value: Any, parameters: dict) -> RuleFailure | None:
        allowed = {str(item) for item in parameters["values"]}
        return None if str(value) in allowed else self._fail("not in the reference list", value)

    def _matches(self, value: Any, parameters: dict) -> RuleFailure | None:
        if self._regex.fullmatch(str(value)):
            return None
        return self._fail("does not match the pattern", value)

    def _in_range(self, value: Any, parameters: dict) -> RuleFailure | None:
        number = _number(value)
        low, high = parameters.get("min"), parameters.get("max")
        if number is None:
            return self._fail("not a number", value)
        if low is not None and number < Decimal(str(low)):
            return self._fail(f"below {low}", value)
        if high is not None and number > Decimal(str(high)):
            return self._fail(f"above {high}", value)
        return None

    def _within_length(self, value: Any, parameters: dict) -> RuleFailure | None:
        if len(str(value)) <= int(parameters["max_length"]):
            return None
        return self._fail(f"longer than {parameters['max_length']}", value)

    def _fresh(self, value: Any, parameters: dict) -> RuleFailure | None:
        moment = _moment(value)
        if moment is None:
            return self._fail("not a date and time", value)
        age = self.now - moment
        if age <= timedelta(seconds=float(parameters["max_age_seconds"])):
            return None
        return self._fail(f"older than the freshness target ({_age(age)} old)", value)

    # A kind not here passes a value (a type or uniqueness rule judges nothing here).
    _VALUE_CHECKS: ClassVar[dict[str, Callable[..., RuleFailure | None]]] = {
        RuleKind.REFERENCE_LIST: _in_list,
        RuleKind.ALLOWED_VALUES: _in_list,
        RuleKind.PATTERN: _matches,
        RuleKind.RANGE: _in_range,
        RuleKind.MAX_LENGTH: _within_length,
        RuleKind.FRESHNESS: _fresh,
    }

    def _fail(self, message: str, value: Any, fields: tuple[str, ...] = ()) -> RuleFailure:
        text = str(value)
        return RuleFailure(
            self.rule.field_name,
            self.rule.kind,
            message,
            text[:40],
            excerpt_fields=fields or (self.rule.field_name,),
        )
