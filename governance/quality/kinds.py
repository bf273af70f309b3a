"""Rule kinds and quality dimensions: what each kind of rule measures, and which
parameters a steward's rule of each kind needs.

Below both the models (whose fields choose from these and whose `clean` validates with
them) and the rules (`governance.quality.rules`, which apply them), so the models import
nothing from the rules.
"""

import operator
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.db import models

from governance.compliance.regex_safety import check_pattern
from governance.pipeline.models import Dataset, DatasetField


class RuleSpec(Protocol):
    """What a steward rule says (governance.quality.models.QualityRule is one)."""

    dataset: Dataset
    kind: str
    field_name: str
    parameters: dict[str, Any]


class DimensionCode(models.TextChoices):
    COMPLETENESS = "completeness", "Completeness"
    ACCURACY = "accuracy", "Accuracy"
    CONSISTENCY = "consistency", "Consistency"
    TIMELINESS = "timeliness", "Timeliness"
    VALIDITY = "validity", "Validity"
    UNIQUENESS = "uniqueness", "Uniqueness"


class RuleKind(models.TextChoices):
    NOT_NULL = "not_null", "Not null (required)"
    TYPE = "type", "Type conforms"
    PATTERN = "pattern", "Matches pattern"
    ALLOWED_VALUES = "allowed_values", "In allowed values"
    MAX_LENGTH = "max_length", "Within maximum length"
    UNIQUE = "unique", "Unique key"
    CROSS_FIELD = "cross_field", "Cross-field comparison"
    FRESHNESS = "freshness", "Event time within freshness target"
    RANGE = "range", "Within range"
    REFERENCE_LIST = "reference_list", "In reference list"


class RuleOrigin(models.TextChoices):
    CONTRACT = "contract", "Derived from the contract"
    STEWARD = "steward", "Added by a steward"


# Which dimension each kind of rule measures.
DIMENSION_OF_KIND = {
    RuleKind.NOT_NULL: DimensionCode.COMPLETENESS,
    RuleKind.TYPE: DimensionCode.VALIDITY,
    RuleKind.PATTERN: DimensionCode.VALIDITY,
    RuleKind.ALLOWED_VALUES: DimensionCode.VALIDITY,
    RuleKind.MAX_LENGTH: DimensionCode.VALIDITY,
    RuleKind.UNIQUE: DimensionCode.UNIQUENESS,
    RuleKind.CROSS_FIELD: DimensionCode.CONSISTENCY,
    RuleKind.FRESHNESS: DimensionCode.TIMELINESS,
    RuleKind.RANGE: DimensionCode.ACCURACY,
    RuleKind.REFERENCE_LIST: DimensionCode.ACCURACY,
}

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


def validate_steward_rule(rule: RuleSpec) -> None:
    """Refuse a steward rule whose parameters cannot be applied, saying which and why."""
    parameters = rule.parameters or {}
    field_names = set(
        DatasetField.objects.filter(dataset=rule.dataset).values_list("name", flat=True)
    )

    def known(name: str, where: str):
        if name not in field_names:
            raise ValidationError(
                {where: f"{name!r} is not a field of the {rule.dataset.slug} contract"}
            )

    if rule.kind == RuleKind.CROSS_FIELD:
        _require(rule, parameters, "left", '"left": a field name')
        _require(rule, parameters, "right", '"right": a field name')
        if parameters.get("op") not in COMPARISONS:
            raise ValidationError({"parameters": f'"op" must be one of {", ".join(COMPARISONS)}'})
        known(parameters["left"], "parameters")
        known(parameters["right"], "parameters")
        return
    if rule.kind != RuleKind.UNIQUE or rule.field_name:
        if not rule.field_name:
            raise ValidationError({"field_name": f"a {rule.kind} rule needs a field"})
        known(rule.field_name, "field_name")
    _check_parameters(rule, parameters)


def _require(rule: RuleSpec, parameters: dict, key: str, message: str) -> None:
    if parameters.get(key) in (None, "", []):
        raise ValidationError({"parameters": f"{rule.kind} needs {message}"})


def _check_parameters(rule: RuleSpec, parameters: dict) -> None:
    """The parameters a rule of a single field's kind needs."""
    if rule.kind in (RuleKind.REFERENCE_LIST, RuleKind.ALLOWED_VALUES):
        _require(rule, parameters, "values", '"values": a non-empty list')
        if not isinstance(parameters["values"], list):
            raise ValidationError({"parameters": '"values" must be a list'})
    elif rule.kind == RuleKind.PATTERN:
        _require(rule, parameters, "regex", '"regex": a pattern')
        try:
            check_pattern(parameters["regex"])
        except ValidationError as error:
            raise ValidationError({"parameters": error.messages}) from error
    elif rule.kind == RuleKind.RANGE:
        if parameters.get("min") is None and parameters.get("max") is None:
            raise ValidationError({"parameters": 'range needs "min", "max" or both'})
        for key in ("min", "max"):
            if parameters.get(key) is not None:
                try:
                    Decimal(str(parameters[key]))
                except InvalidOperation:
                    raise ValidationError(
                        {"parameters": f'"{key}" must be a number, got {parameters[key]!r}'}
                    ) from None
    elif rule.kind == RuleKind.FRESHNESS:
        _require(rule, parameters, "max_age_seconds", '"max_age_seconds": a positive number')
    elif rule.kind == RuleKind.MAX_LENGTH:
        _require(rule, parameters, "max_length", '"max_length": a positive number')
