"""Judging raw records, one at a time, without touching the database.

A `RecordEvaluator` is built once per run from the contract, the record rules, the
PII patterns and the classification of each field; `evaluate()` turns one raw
record into an `Outcome`: typed and protected values, every failed rule, the PII
found (as masked excerpts only). `judge()` does the same for a chunk of raw rows and
hands back what the promotion writes, values already JSON text (`Verdict`), so that
the process writing the chunk has almost nothing left to do per record. Keeping this
free of database access lets a run spread the work over processes, and makes every
rule testable on its own.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from chart.contract import CheckedRecord, CompiledContract
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import MaskingRule
from governance.compliance.pii.masking import mask, mask_pii, masked_excerpt
from governance.compliance.pii.scanner import Match, PatternSet, scan_value
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


@dataclass(slots=True)
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


@dataclass(slots=True)
class Finding:
    field: str
    pii_type: str
    pattern_id: int | None
    confidence: float
    masked_excerpt: str


@dataclass(slots=True)
class Outcome:
    raw_id: int
    data: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    business_key: str = ""
    masked_unclassified: set[str] = field(default_factory=set)
    # PII a field's classification already expects, one (field, PII type) pair per
    # value: counted per run, not stored per record.
    expected_pii: list[tuple[str, str]] = field(default_factory=list)

    @property
    def holds_back(self) -> bool:
        return any(failure.quarantines for failure in self.failures)


RawRow = tuple[int, str | None, str]  # raw record id, payload as JSON text, parse error


class Verdict(NamedTuple):
    """A judged record as the promotion stores it.

    A named tuple because a worker sends one per record to the promoting process, and
    tuples cross between processes (pickled) several times faster than objects.
    """

    raw_id: int
    business_key: str
    data: str  # JSON text of the typed, protected values
    extras: str  # JSON text of the fields kept aside
    failures: list[Failure]
    findings: list[Finding]
    # The values of the dataset's unique fields, as the uniqueness check compares them.
    unique_values: dict[str, str]

    @property
    def holds_back(self) -> bool:
        # Most records fail nothing: answer those without building a generator.
        return bool(self.failures) and any(failure.quarantines for failure in self.failures)


@dataclass
class JudgedChunk:
    verdicts: list[Verdict]
    # (field, PII type) -> values where the field's classification expects that PII.
    expected_pii: Counter
    masked_unclassified: set[str]

    def __reduce__(self):
        # Sent from a worker as plain tuples: pickling named tuples runs Python code for
        # each one, which doubled the cost of handing a chunk back.
        verdicts = [tuple(verdict) for verdict in self.verdicts]
        return _judged_chunk, (verdicts, self.expected_pii, self.masked_unclassified)


def _judged_chunk(verdicts: list[tuple], expected_pii: Counter, masked: set[str]) -> JudgedChunk:
    return JudgedChunk(list(map(Verdict._make, verdicts)), expected_pii, masked)


# One encoder for every value: json.dumps with options builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    """The JSON text stored in chart: compact, non-ASCII kept as is."""
    return _JSON_ENCODER.encode(value)


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
        unique_fields: Iterable[str] = (),
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
        self.unique_fields = tuple(unique_fields)
        self._excerpt_masks: dict[str, Callable[[str], str]] = {}
        # Decided once per run rather than once per value: how each field's values are
        # protected (no entry: shown as they are), the rank of its level, and which
        # fields someone classified.
        self._protectors = {
            name: protector
            for name, protection in protections.items()
            if (protector := self._protector(protection)) is not None
        }
        self._ranks = {name: protection.rank for name, protection in protections.items()}
        self._classified = frozenset(
            name for name, protection in protections.items() if protection.level_name is not None
        )

    def _protector(self, protection: FieldProtection) -> Callable[[Any], str] | None:
        """The function turning a field's values into what chart holds; None: kept as is."""
        if protection.requires_encryption and self.keyring is not None:
            encrypt = self.keyring.encrypt
            context = field_context(self.dataset_id, protection.name)
            return lambda value: encrypt(str(value), context=context)
        if protection.masking != MaskingRule.NONE:
            rule, key = protection.masking, self.hash_key
            return lambda value: mask(str(value), rule, key=key)
        return None

    def judge(self, rows: Iterable[RawRow]) -> JudgedChunk:
        """Evaluate raw rows (payloads as JSON text) into verdicts ready to store."""
        outcomes = self.evaluate_all(
            (raw_id, None if text is None else json.loads(text), parse_error)
            for raw_id, text, parse_error in rows
        )
        verdicts = []
        expected_pii: list[tuple[str, str]] = []
        masked_unclassified: set[str] = set()
        for outcome in outcomes:
            expected_pii.extend(outcome.expected_pii)
            masked_unclassified.update(outcome.masked_unclassified)
            verdicts.append(
                Verdict(
                    raw_id=outcome.raw_id,
                    business_key=outcome.business_key,
                    data=to_json(outcome.data),
                    extras=to_json(outcome.extras) if outcome.extras else "{}",
                    failures=outcome.failures,
                    findings=outcome.findings,
                    unique_values={
                        name: str(outcome.data[name])
                        for name in self.unique_fields
                        if outcome.data.get(name) is not None
                    },
                )
            )
        return JudgedChunk(verdicts, Counter(expected_pii), masked_unclassified)

    def evaluate(self, raw_id: int, payload: Any, parse_error: str) -> Outcome:
        return self.evaluate_all([(raw_id, payload, parse_error)])[0]

    def evaluate_all(self, rows: Iterable[tuple[int, Any, str]]) -> list[Outcome]:
        """Evaluate records (id, payload, parse error) in three passes: check, scan, protect.

        The outcomes are those of evaluating each record on its own. Passes are faster
        because each keeps its own code and data in the CPU's caches: scanning a record
        between two encryptions made each encryption about three times slower.
        """
        checked = [self._check(raw_id, payload, error) for raw_id, payload, error in rows]
        found = [self._find_pii(record) for _, record in checked]
        for (outcome, record), (in_data, in_extras) in zip(checked, found, strict=True):
            if record is not None:
                self._protect(outcome, record, in_data, in_extras)
        return [outcome for outcome, _ in checked]

    def _check(
        self, raw_id: int, payload: Any, parse_error: str
    ) -> tuple[Outcome, CheckedRecord | None]:
        """The contract and the record rules: every failure, and the typed record."""
        outcome = Outcome(raw_id=raw_id)
        if parse_error:
            outcome.failures.append(
                Failure("", "parse", f"the line could not be parsed: {parse_error}")
            )
            return outcome, None
        checked = self.contract.check(payload)
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
        return outcome, checked

    def _business_key(self, data: dict[str, Any]) -> str:
        parts = []
        for name in self.business_key:
            value = data.get(name)
            if value is None:
                return ""  # a record without its whole key supersedes nothing
            parts.append(str(value))
        return "|".join(parts)

    def _find_pii(
        self, record: CheckedRecord | None
    ) -> tuple[dict[str, list[Match]], dict[str, list[Match]]]:
        """PII in every string value of the record's data and extras, by field name."""
        if record is None:
            return {}, {}
        return self._scan_strings(record.data), self._scan_strings(record.extras)

    def _scan_strings(self, values: dict[str, Any]) -> dict[str, list[Match]]:
        found = {}
        patterns = self.patterns
        for name, value in values.items():
            if isinstance(value, str):
                matches = scan_value(value, patterns, field_name=name)
                if matches:
                    found[name] = matches
        return found

    def _protect(
        self,
        outcome: Outcome,
        record: CheckedRecord,
        in_data: dict[str, list[Match]],
        in_extras: dict[str, list[Match]],
    ) -> None:
        """The values chart holds: protected as their level says, PII noted and masked."""
        protected = {}
        protectors, classified = self._protectors, self._classified
        for name, value in record.data.items():
            matches = in_data.get(name)
            if matches:
                self._note_pii(name, value, matches, outcome)
            protector = protectors.get(name)
            if value is None:
                protected[name] = None
            elif protector is not None:
                protected[name] = protector(value)
            elif matches and name not in classified:
                # PII in a field nobody classified: masked by default, and suggested.
                protected[name] = mask_matches(value, matches)
                outcome.masked_unclassified.add(name)
            else:
                protected[name] = value
        outcome.data = protected
        kept = {}
        for name, value in record.extras.items():
            matches = in_extras.get(name)
            if matches:
                self._note_pii(name, value, matches, outcome)
                value = mask_matches(value, matches)
            kept[name] = value
        outcome.extras = kept

    def _note_pii(self, name: str, value: str, matches: list[Match], outcome: Outcome) -> None:
        """Record a finding for each match, unless the field's level expects that PII."""
        rank = self._ranks.get(name)
        for match in matches:
            if rank is not None and rank >= self.expected_rank.get(match.pattern_id, 0):
                outcome.expected_pii.append((name, match.pii_type))
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
                        other_spans=[(o.start, o.end) for o in matches if o is not match],
                    ),
                )
            )

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
