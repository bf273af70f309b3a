"""Judging raw records, one at a time, without touching the database.

A `RecordEvaluator` is built once per run from the contract, the record rules, the
PII patterns and the classification of each field; `evaluate()` turns one raw
record into an `Outcome`: typed and protected values, every failed rule, the PII
found (as masked excerpts only). Keeping this free of database access lets a run
spread the work over processes, and makes every rule testable on its own.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chart.contract import CompiledContract
from chart.encryption import Keyring, field_context
from chart.pii.masking import mask, mask_pii, masked_excerpt
from chart.pii.scanner import Match, PatternSet, scan_value
from governance.compliance.models import MaskingRule
from governance.pipeline.models import Transform
from governance.quality.models import DimensionCode
from governance.quality.rules import DIMENSION_OF_KIND, KIND_OF_CONTRACT_REASON, RecordRuleCheck

# Failures of these dimensions are measured but never hold a record back: an old
# record (timeliness) or one that supersedes another (uniqueness of the business
# key) is still a correct record.
MEASURED_ONLY = {DimensionCode.TIMELINESS}


@dataclass(frozen=True)
class FieldProtection:
    """How a contract field's values reach chart, from its classification level."""

    name: str
    level_name: str | None = None
    rank: int | None = None
    requires_encryption: bool = False
    masking: str = MaskingRule.NONE

    @property
    def transform(self) -> str:
        if self.requires_encryption:
            return Transform.ENCRYPTED
        if self.masking != MaskingRule.NONE:
            return Transform.MASKED
        return Transform.TYPED


@dataclass
class Failure:
    field: str
    rule: str
    message: str
    value_excerpt: str = ""
    quarantines: bool = True

    def as_reason(self) -> dict[str, str]:
        return {
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
            "value_excerpt": self.value_excerpt,
        }


@dataclass
class Finding:
    field: str
    pii_type: str
    pattern_id: int | None
    confidence: float
    masked_excerpt: str


@dataclass
class Outcome:
    raw_id: int
    data: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    business_key: str = ""
    masked_unclassified: set[str] = field(default_factory=set)
    # PII a field's classification already expects: counted, not stored per record.
    expected_pii: Counter = field(default_factory=Counter)

    @property
    def holds_back(self) -> bool:
        return any(failure.quarantines for failure in self.failures)


class RecordEvaluator:
    def __init__(
        self,
        *,
        dataset_id: int,
        contract: CompiledContract,
        record_rules: list[RecordRuleCheck],
        patterns: PatternSet,
        protections: dict[str, FieldProtection],
        business_key: list[str],
        keyring: Keyring | None,
        hash_key: bytes,
        expected_rank: dict[int | None, int] | None = None,
    ):
        self.dataset_id = dataset_id
        self.contract = contract
        self.record_rules = record_rules
        self.patterns = patterns
        self.protections = protections
        self.business_key = business_key
        self.keyring = keyring
        self.hash_key = hash_key
        # Pattern id -> rank of the level its PII calls for (0: any classification will do).
        self.expected_rank = expected_rank or {}
        self._excerpt_masks: dict[str, Callable[[str], str]] = {}

    def evaluate(self, raw_id: int, payload: Any, parse_error: str) -> Outcome:
        outcome = Outcome(raw_id=raw_id)
        if parse_error:
            outcome.failures.append(
                Failure("", "parse", f"the line could not be parsed: {parse_error}")
            )
            return outcome
        checked = self.contract.check(payload)
        outcome.extras = checked.extras
        for reason in checked.reasons:
            kind = KIND_OF_CONTRACT_REASON.get(reason.rule, reason.rule)
            outcome.failures.append(
                Failure(
                    reason.field,
                    kind,
                    reason.message,
                    self._protect_excerpt(reason.field, reason.value_excerpt),
                )
            )
        for check in self.record_rules:
            failure = check.check(checked.data)
            if failure is not None:
                dimension = DIMENSION_OF_KIND.get(failure.rule)
                outcome.failures.append(
                    Failure(
                        failure.field,
                        failure.rule,
                        failure.message,
                        self._protect_excerpt(failure.field, failure.value_excerpt),
                        quarantines=dimension not in MEASURED_ONLY,
                    )
                )
        outcome.business_key = self._business_key(checked.data)
        outcome.data = self._scan_and_protect(checked.data, outcome)
        outcome.extras = self._scan_extras(checked.extras, outcome)
        return outcome

    def _business_key(self, data: dict[str, Any]) -> str:
        if not self.business_key:
            return ""
        parts = [data.get(name) for name in self.business_key]
        if any(part is None for part in parts):
            return ""
        return "|".join(str(part) for part in parts)

    def _scan(self, name: str, value: str, outcome: Outcome) -> list[Match]:
        """Find PII in a value; record a finding unless the field's level expects it."""
        matches = scan_value(value, self.patterns, field_name=name)
        if not matches:
            return matches
        protection = self.protections.get(name)
        rank = protection.rank if protection else None
        spans = [(match.start, match.end) for match in matches]
        for match in matches:
            if rank is not None and rank >= self.expected_rank.get(match.pattern_id, 0):
                outcome.expected_pii[(name, match.pii_type)] += 1
                continue
            outcome.findings.append(
                Finding(
                    field=name,
                    pii_type=match.pii_type,
                    pattern_id=match.pattern_id,
                    confidence=match.confidence,
                    masked_excerpt=masked_excerpt(
                        value,
                        match.start,
                        match.end,
                        pii_type=match.pii_type,
                        other_spans=[span for span in spans if span != (match.start, match.end)],
                    ),
                )
            )
        return matches

    def _scan_and_protect(self, data: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        protected = {}
        for name, value in data.items():
            protection = self.protections.get(name) or FieldProtection(name)
            matches = self._scan(name, value, outcome) if isinstance(value, str) else []
            if value is None:
                protected[name] = None
            elif protection.requires_encryption and self.keyring is not None:
                protected[name] = self.keyring.encrypt(
                    str(value), context=field_context(self.dataset_id, name)
                )
            elif protection.masking != MaskingRule.NONE:
                protected[name] = mask(str(value), protection.masking, key=self.hash_key)
            elif matches and protection.level_name is None:
                # PII in a field nobody classified: masked by default, and suggested.
                protected[name] = mask_matches(value, matches)
                outcome.masked_unclassified.add(name)
            else:
                protected[name] = value
        return protected

    def _scan_extras(self, extras: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        kept = {}
        for name, value in extras.items():
            if isinstance(value, str):
                matches = self._scan(name, value, outcome)
                if matches:
                    value = mask_matches(value, matches)
            kept[name] = value
        return kept

    def _protect_excerpt(self, field_name: str, excerpt: str) -> str:
        """An excerpt of a failing value, never more readable than the field allows."""
        protection = self.protections.get(field_name)
        if not excerpt or protection is None or protection.level_name is None:
            return excerpt
        if protection.requires_encryption:
            return "[restricted]"
        if protection.masking != MaskingRule.NONE:
            return mask(excerpt, protection.masking, key=self.hash_key)
        return excerpt


def mask_matches(text: str, matches: list[Match]) -> str:
    """The text with each PII match masked in place; the words around it kept."""
    masked, position = [], 0
    for match in sorted(matches, key=lambda m: m.start):
        masked.append(text[position : match.start])
        masked.append(mask_pii(text[match.start : match.end], match.pii_type))
        position = match.end
    masked.append(text[position:])
    return "".join(masked)
