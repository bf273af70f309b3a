"""Judging raw records, one at a time, without touching the database.

A `RecordEvaluator` is built once per run from the contract, the record rules, the
PII patterns and the classification of each field; `evaluate()` turns one raw
record into an `Outcome`: the values chart stores, every failed rule, the PII found
(as masked excerpts and positions only). `judge()` does the same for a chunk of raw
rows and hands back what the promotion writes, values already JSON text (`Verdict`),
so that the process writing the chunk has almost nothing left to do per record.
Keeping this free of database access lets a run spread the work over processes, and
makes every rule testable on its own.

What chart stores of a value (DESIGN.md, Sensitive values):
- the typed value, when its field's level does not require encryption: masking is
  what a reader without clearance *sees*, applied where a value leaves the database;
- the AES-GCM ciphertext when it does, with a keyed token of the typed value in
  `tokens` for equality (uniqueness, business keys, counting distinct);
- in a free-text field, PII its level does not expect (a card number in an internal
  note) replaced by its type (`<payment_card>`), the original kept encrypted in
  `sealed` and a token of it in `tokens`; fields outside the contract likewise.
Every unique field has a token too: uniqueness compares tokens, whatever the level.
Messages never carry values; a failing value's excerpt is protected at its field's
level (the higher of both fields' for a cross-field rule) before it is stored.
"""

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from chart.contract import CheckedRecord, CompiledContract
from governance.compliance.keys import Keyring, field_context
from governance.compliance.models import MaskingRule
from governance.compliance.pii.masking import (
    REDACTED,
    mask,
    mask_matches,
    masked_excerpt,
    tag_matches,
)
from governance.compliance.pii.scanner import Match, PatternSet, scan_value
from governance.compliance.pii.validators import declared_phone_regions
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import chart_transform
from governance.quality.models import DimensionCode
from governance.quality.rules import (
    DIMENSION_OF_KIND,
    KIND_OF_CONTRACT_REASON,
    RecordRuleCheck,
    RuleFailure,
)

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
    # A string field: PII its level does not expect is tagged in it. Typed fields
    # (numbers, dates, emails, enumerations) keep the value their type gives.
    free_text: bool = True

    @property
    def transform(self) -> str:
        return chart_transform(requires_encryption=self.requires_encryption)


@dataclass(slots=True)
class Finding:
    field: str
    pii_type: str
    pattern_id: int | None
    confidence: float
    masked_excerpt: str
    start: int = 0  # where the PII is in the value as received
    end: int = 0


@dataclass(slots=True)
class Outcome:
    raw_id: int
    data: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    # Originals of tagged values, encrypted: {"data": {name: …}, "extras": {name: …}}.
    sealed: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: list[RuleFailure] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    business_key: str = ""
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
    data: str  # JSON text of the stored values
    extras: str  # JSON text of the fields kept aside
    tokens: str  # JSON text of the keyed tokens
    sealed: str  # JSON text of the encrypted originals of tagged values
    failures: list[RuleFailure]
    findings: list[Finding]
    # The tokens of the dataset's unique fields, as the uniqueness check compares them.
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

    def __reduce__(self):
        # Sent from a worker as plain tuples: pickling named tuples runs Python code for
        # each one, which doubled the cost of handing a chunk back.
        verdicts = [tuple(verdict) for verdict in self.verdicts]
        return _judged_chunk, (verdicts, self.expected_pii)


def _judged_chunk(verdicts: list[tuple], expected_pii: Counter) -> JudgedChunk:
    return JudgedChunk(list(map(Verdict._make, verdicts)), expected_pii)


# One encoder for every value: json.dumps with options builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# orjson reads an integer beyond 64 bits as a float, so at least this large.
_LARGEST_EXACT = 2**63


def to_json(value: Any) -> str:
    """The JSON text stored in chart: compact, non-ASCII kept as is.

    orjson writes the same text several times faster than the standard library; what it
    refuses (an integer beyond 64 bits, a lone surrogate) the standard library writes.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON_ENCODER.encode(value)


def from_json(text: str) -> Any:
    """A payload's JSON text as Python values, every number exactly as written.

    orjson reads several times faster than the standard library, but turns an integer
    beyond 64 bits into a float: a payload where that may have happened is read again by
    the standard library, as is text orjson refuses (NaN, Infinity), which the standard
    library has always accepted.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if _may_have_lost_digits(value) else value


def _may_have_lost_digits(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return abs(value) >= _LARGEST_EXACT
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:
        kind = type(item)
        if kind is float:
            if abs(item) >= _LARGEST_EXACT:
                return True
        elif (kind is dict or kind is list) and _may_have_lost_digits(item):
            return True
    return False


def sealed_context(dataset_id: int, field_name: str, *, extra: bool = False) -> str:
    """What an original kept in `sealed` is bound to: its dataset, field, and place."""
    return field_context(dataset_id, f"extras:{field_name}" if extra else f"{field_name}:original")


def excerpt_at_level(excerpt: str, *, masking: str, requires_encryption: bool) -> str:
    """An excerpt as readable as a level lets everyone read it: masked by its rule."""
    if not excerpt:
        return ""
    if masking == MaskingRule.NONE:
        return REDACTED if requires_encryption else excerpt
    return mask(excerpt, masking)


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
        keyring: Keyring,
        tokens: TokenKeyring,
        expected_rank: dict[int | None, int] | None = None,
        unique_fields: Iterable[str] = (),
        country: str = "",
        field_countries: dict[str, str] | None = None,
    ):
        self.dataset_id = dataset_id
        self.contract = contract
        self.record_rules = record_rules
        self.patterns = patterns
        self.protections = protections
        self.business_key = business_key
        self.keyring = keyring
        self.token_keyring = tokens
        # Pattern id -> rank of the level its PII calls for (0: any classification will do).
        self.expected_rank = expected_rank or {}
        self.unique_fields = tuple(unique_fields)
        # Where phone numbers without their country code come from: the dataset's country
        # and the fields that declare their own (governance.pipeline.models).
        self.phone_regions = (country,) if country else None
        self.field_phone_regions = {
            name: (code,) for name, code in (field_countries or {}).items() if code
        }
        # Decided once per run rather than once per value.
        self._encrypted = {
            name: field_context(dataset_id, name)
            for name, protection in protections.items()
            if protection.requires_encryption
        }
        self._ranks = {name: protection.rank for name, protection in protections.items()}
        self._free_text = frozenset(
            name for name, protection in protections.items() if protection.free_text
        )
        self._tokenised = frozenset(self._encrypted) | frozenset(self.unique_fields)
        classified = [p for p in protections.values() if p.level_name is not None]
        # A record-level excerpt (a payload that is not an object) is as secret as the
        # most sensitive field of the dataset.
        self._highest = max(classified, key=lambda p: p.rank or 0) if classified else None

    def judge(self, rows: Iterable[RawRow]) -> JudgedChunk:
        """Evaluate raw rows (payloads as JSON text) into verdicts ready to store."""
        outcomes = self.evaluate_all(
            (raw_id, None if text is None else from_json(text), parse_error)
            for raw_id, text, parse_error in rows
        )
        verdicts = []
        expected_pii: list[tuple[str, str]] = []
        unique_fields = self.unique_fields
        for outcome in outcomes:
            expected_pii.extend(outcome.expected_pii)
            tokens = outcome.tokens
            verdicts.append(
                Verdict(
                    raw_id=outcome.raw_id,
                    business_key=outcome.business_key,
                    data=to_json(outcome.data),
                    extras=to_json(outcome.extras) if outcome.extras else "{}",
                    tokens=to_json(tokens) if tokens else "{}",
                    sealed=to_json(outcome.sealed) if outcome.sealed else "{}",
                    failures=outcome.failures,
                    findings=outcome.findings,
                    unique_values={name: tokens[name] for name in unique_fields if name in tokens},
                )
            )
        return JudgedChunk(verdicts, Counter(expected_pii))

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

    def protect_values(self, data: dict[str, Any], extras: dict[str, Any]) -> Outcome:
        """What chart stores of these typed values under today's classifications.

        No rule is judged: for re-protecting a record whose field changed level, from
        its originals (chart.protected.originals). Its findings are not new ones.
        """
        record = CheckedRecord(data=data, extras=extras)
        outcome = Outcome(raw_id=0)
        in_data, in_extras = self._find_pii(record)
        self._protect(outcome, record, in_data, in_extras)
        return outcome

    def _check(
        self, raw_id: int, payload: Any, parse_error: str
    ) -> tuple[Outcome, CheckedRecord | None]:
        """The contract and the record rules: every failure, and the typed record."""
        outcome = Outcome(raw_id=raw_id)
        if parse_error:
            outcome.failures.append(
                RuleFailure("", "parse", f"the line could not be parsed: {parse_error}")
            )
            return outcome, None
        checked = self.contract.check(payload)
        for reason in checked.reasons:
            kind = KIND_OF_CONTRACT_REASON.get(reason.rule, reason.rule)
            outcome.failures.append(
                RuleFailure(
                    reason.field,
                    kind,
                    reason.message,
                    self.protect_excerpt((reason.field,), reason.value_excerpt),
                )
            )
        for check in self.record_rules:
            failure = check.check(checked.data)
            if failure is not None:
                dimension = DIMENSION_OF_KIND.get(failure.rule)
                outcome.failures.append(
                    RuleFailure(
                        failure.field,
                        failure.rule,
                        failure.message,
                        self.protect_excerpt(failure.excerpt_fields, failure.value_excerpt),
                        quarantines=dimension not in MEASURED_ONLY,
                    )
                )
        return outcome, checked

    def _find_pii(
        self, record: CheckedRecord | None
    ) -> tuple[dict[str, list[Match]], dict[str, list[Match]]]:
        """PII in every string value of the record's data and extras, by field name."""
        if record is None:
            return {}, {}
        if self.phone_regions is None:  # most datasets: no context switch per record
            return self._scan_strings(record.data), self._scan_strings(record.extras)
        with declared_phone_regions(self.phone_regions):
            return self._scan_strings(record.data), self._scan_strings(record.extras)

    def _scan_strings(self, values: dict[str, Any]) -> dict[str, list[Match]]:
        found = {}
        patterns = self.patterns
        own_regions = self.field_phone_regions
        for name, value in values.items():
            if isinstance(value, str):
                if name in own_regions:
                    with declared_phone_regions(own_regions[name]):
                        matches = scan_value(value, patterns, field_name=name)
                else:
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
        """The values chart holds, their tokens, and the PII noted (see the module doc)."""
        stored: dict[str, Any] = {}
        tokens: dict[str, str] = {}
        sealed: dict[str, str] = {}
        encrypted, tokenised, free_text = self._encrypted, self._tokenised, self._free_text
        token, encrypt = self.token_keyring.token, self.keyring.encrypt
        for name, value in record.data.items():
            if value is None:  # only strings are scanned: nothing was found in it
                stored[name] = None
                continue
            matches = in_data.get(name) if in_data else None
            unexpected = self._note_pii(name, value, matches, outcome) if matches else None
            context = encrypted.get(name)
            if context is not None:
                stored[name] = encrypt(str(value), context=context)
                tokens[name] = token(value)
            elif unexpected and name in free_text:
                stored[name] = tag_matches(value, unexpected)
                sealed[name] = encrypt(value, context=sealed_context(self.dataset_id, name))
                tokens[name] = token(value)
            else:
                stored[name] = value
                if name in tokenised:
                    tokens[name] = token(value)
        outcome.data = stored
        outcome.tokens = tokens
        if sealed:
            outcome.sealed["data"] = sealed
        outcome.business_key = self._business_key(record.data, tokens, encrypted, sealed)

        kept, sealed_extras = {}, {}
        for name, value in record.extras.items():
            matches = in_extras.get(name)
            if matches:
                self._note_pii(name, value, matches, outcome, expected=False)
                sealed_extras[name] = self.keyring.encrypt(
                    value, context=sealed_context(self.dataset_id, name, extra=True)
                )
                value = tag_matches(value, matches)
            kept[name] = value
        outcome.extras = kept
        if sealed_extras:
            outcome.sealed["extras"] = sealed_extras

    def _business_key(
        self, typed: dict[str, Any], tokens: dict[str, str], encrypted, sealed
    ) -> str:
        parts = []
        for name in self.business_key:
            value = typed.get(name)
            if value is None:
                return ""  # a record without its whole key supersedes nothing
            # A key part chart holds only encrypted or tagged is compared by its token.
            parts.append(tokens[name] if name in encrypted or name in sealed else str(value))
        return "|".join(parts)

    def _note_pii(
        self, name: str, value: str, matches: list[Match], outcome: Outcome, *, expected=True
    ) -> list[Match]:
        """A finding for each match the field's level does not expect; those matches."""
        rank = self._ranks.get(name) if expected else None
        unexpected = []
        expected_rank = self.expected_rank
        for match in matches:
            if rank is not None and rank >= expected_rank.get(match.pattern_id, 0):
                outcome.expected_pii.append((name, match.pii_type))
                continue
            unexpected.append(match)
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
                    start=match.start,
                    end=match.end,
                )
            )
        return unexpected

    def protect_excerpt(self, field_names: Iterable[str], excerpt: str) -> str:
        """An excerpt of a failing value as readable as its fields let everyone read it.

        Classified: masked by the most sensitive of the fields' levels. Unclassified: the
        PII in it masked. The record itself (no field): at the dataset's highest level.
        """
        if not excerpt:
            return ""
        protections = [self.protections.get(name) for name in field_names if name]
        levels = [p for p in protections if p is not None and p.level_name is not None]
        if not any(field_names) and self._highest is not None:
            levels.append(self._highest)
        if levels:
            top = max(levels, key=lambda p: p.rank or 0)
            return excerpt_at_level(
                excerpt, masking=top.masking, requires_encryption=top.requires_encryption
            )
        with declared_phone_regions(self.phone_regions):
            matches = scan_value(excerpt, self.patterns)
        return mask_matches(excerpt, matches) if matches else excerpt
