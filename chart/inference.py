"""A contract inferred from a sample file: what a steward starts a new dataset from.

`infer_contract` reads a bounded sample (at most SAMPLE_MAX_BYTES, gzip-compressed or
not, of which the first SAMPLE_MAX_RECORDS records) in memory with explore's own
parsers (CSV with a header, JSON Lines, a JSON array: what a load accepts), lands
nothing, and proposes one field per column:

- its type: the narrowest of boolean, integer, decimal, date, datetime and email that
  every non-empty value of the sample passes through the promotion's own coercers
  (chart.contract.COERCERS), else string; a string column with few distinct values
  (at most ENUM_MAX_VALUES, each seen twice on average) becomes an enumeration of them;
- required when no record leaves it empty or out; unique when no two of its values are
  the same (as typed: "1" and "01" are the same integer);
- minimum and maximum for numbers, max_length for text (email addresses included);
- a classification where the PII scan (governance.compliance.pii.scanner, the
  promotion's scanner over every enabled pattern) finds PII in at least
  SUGGESTION_MIN_HIT_RATIO of its values, at the level a run's classification
  suggestion would name (chart.suggestions.suggested_level). A column where the scan
  finds any PII gets no allowed values and no range: they would put personal values
  into the contract. Its evidence shows masked excerpts only.

Nothing here carries a value out except the proposal itself (allowed values and
bounds of columns without PII) and masked excerpts: messages and notes say what and
where, never what was read.

The proposal becomes a dataset only through the contract import path
(governance.pipeline.contracts): `create_dataset_from_contract` validates and imports
the edited contract (the same located errors and the same audit entry as a contract
file), refusing a slug that is already a dataset; `contract_file` is the YAML that
`export_contract` would write of it, made by the same import rolled back whole.
"""

import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any, BinaryIO

from django.core.exceptions import ValidationError
from django.db import transaction

from atlas_site.formats import plain_decimal
from chart.contract import COERCERS, CoercionError
from chart.suggestions import EXAMPLES, SUGGESTION_MIN_HIT_RATIO, FieldEvidence, suggested_level
from explore import parsers
from explore.services import max_record_bytes
from governance.compliance.pii.masking import EXCERPT_CONTEXT, masked_excerpt
from governance.compliance.pii.scanner import (
    Match,
    PatternSet,
    load_patterns,
    payload_texts,
    scan_value,
)
from governance.pipeline.contracts import (
    CONTRACT_VERSION,
    FIELD_DEFAULTS,
    ContractError,
    ImportResult,
    dump_contracts,
    export_contract,
    import_contract,
    validate_contract,
)
from governance.pipeline.models import FIELD_NAME_VALIDATOR, Dataset, FieldType

SAMPLE_MAX_BYTES = 8 * 1024 * 1024  # of the file as read (decompressed)
SAMPLE_MAX_RECORDS = 10_000
ENUM_MAX_VALUES = 20
ERRORS_SHOWN = 20
# A near miss worth saying: a text column whose values all but this share pass a type.
NEAR_MISS_SHARE = 0.1

# Narrowest first; string takes whatever none of them does.
INFERRED_TYPES = (
    FieldType.BOOLEAN,
    FieldType.INTEGER,
    FieldType.DECIMAL,
    FieldType.DATE,
    FieldType.DATETIME,
    FieldType.EMAIL,
)
TYPE_LABELS: dict[str, str] = {
    FieldType.BOOLEAN: "true/false",
    FieldType.INTEGER: "whole numbers",
    FieldType.DECIMAL: "numbers",
    FieldType.DATE: "dates (YYYY-MM-DD)",
    FieldType.DATETIME: "ISO 8601 dates and times",
    FieldType.EMAIL: "email addresses",
}
# The bounds a contract holds (DatasetField.minimum/maximum: 30 digits, 10 decimals).
_BOUND_PLACES = Decimal(1).scaleb(-10)
_BOUND_LIMIT = Decimal(10) ** 20
# The longest allowed value a contract holds (DatasetField.allowed_values' items).
_ALLOWED_VALUE_MAX_LENGTH = 200
_GZIP_MAGIC = b"\x1f\x8b"
_MIB = 1024 * 1024


class SampleError(ValueError):
    """The sample cannot be read; `errors` says what and where, never a value."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# --- Reading the sample -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The records read from a sample file, in order, and the columns they name."""

    filename: str
    format: str
    records: list[dict[str, Any]]
    columns: list[str]
    more: bool  # the file holds records past SAMPLE_MAX_RECORDS, not read
    warnings: list[str] = field(default_factory=list)


def _content(file: BinaryIO) -> bytes:
    """The file's bytes, decompressed when gzip; SampleError when over SAMPLE_MAX_BYTES."""
    too_large = (
        f"the file is larger than {SAMPLE_MAX_BYTES // _MIB} MiB{{}}, the most a sample may "
        "be: send its first few thousand records instead"
    )
    raw = file.read(SAMPLE_MAX_BYTES + 1)
    if not raw:
        raise SampleError(["the file is empty"])
    if not raw.startswith(_GZIP_MAGIC):
        if len(raw) > SAMPLE_MAX_BYTES:
            raise SampleError([too_large.format("")])
        return raw
    if len(raw) > SAMPLE_MAX_BYTES:
        raise SampleError([too_large.format(" compressed")])
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    try:
        content = inflater.decompress(raw, SAMPLE_MAX_BYTES + 1)
    except zlib.error as exc:
        raise SampleError([f"this is not valid gzip data ({exc})"]) from None
    if len(content) > SAMPLE_MAX_BYTES:
        raise SampleError([too_large.format(" once decompressed")])
    if not inflater.eof:
        raise SampleError(["the gzip data ends too early: the file is truncated"])
    return content


def _format_of(filename: str, content: bytes) -> str:
    fmt = parsers.format_from_name(filename) or parsers.sniff_format(content[: parsers.HEAD_BYTES])
    if fmt is None:
        raise SampleError(
            [
                f"cannot tell the format of {filename!r}: name it .csv, .jsonl or .json "
                "(optionally .gz)"
            ]
        )
    return fmt


def _check_head(content: bytes, fmt: str) -> None:
    head = content[: parsers.HEAD_BYTES]
    try:
        parsers.check_head(head, fmt, complete=len(content) <= parsers.HEAD_BYTES)
    except parsers.FormatError as exc:
        message = str(exc)
        if message.startswith("the first line looks like data"):
            # Worded by line, as the sample page's other messages are.
            message = (
                "line 1 looks like data, not a header naming the columns: is the header "
                "row missing?"
            )
        raise SampleError([message]) from None


def _duplicate_keys(raw_text: str) -> list[str]:
    """Keys a JSON object gives more than once (its parser keeps only the last)."""
    found: list[list[str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        counts = Counter(key for key, _ in items)
        found.append(sorted(key for key, count in counts.items() if count > 1))
        return dict(items)

    try:
        json.loads(raw_text, object_pairs_hook=pairs)
    except ValueError:
        return []
    return found[-1] if found else []  # the record itself is the last object closed


def _name_error(name: str) -> str | None:
    try:
        FIELD_NAME_VALIDATOR(name)
    except ValidationError as error:
        return f"{_shown(name)} is not a valid field name: {' '.join(error.messages)}"
    return None


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:79] + "…")


def _summarised(errors: list[str]) -> list[str]:
    if len(errors) <= ERRORS_SHOWN:
        return errors
    return [*errors[:ERRORS_SHOWN], f"… and {len(errors) - ERRORS_SHOWN:,} more"]


def read_sample(*, file: BinaryIO, filename: str) -> Sample:
    """The first SAMPLE_MAX_RECORDS records of a sample file, read in memory.

    SampleError lists what is wrong with the file and where: too large, empty, not a
    format Atlas reads, records that cannot be read, column names a contract cannot
    have (invalid, or the same key twice in a record). Nothing is written anywhere.
    """
    content = _content(file)
    fmt = _format_of(filename, content)
    _check_head(content, fmt)
    where = "element" if fmt == parsers.JSON else "line"
    reader = parsers.reader_for(fmt, io.BytesIO(content), max_record_bytes=max_record_bytes())
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    first_seen: dict[str, int] = {}  # column -> where it first appears
    read = 0
    more = False
    try:
        for number, raw_text, payload_json, error in reader:
            if read >= SAMPLE_MAX_RECORDS:
                more = True
                break
            read += 1
            if error or payload_json is None:
                errors.append(f"{where} {number}: {error or 'cannot be read'}")
                continue
            if fmt != parsers.CSV:
                for key in _duplicate_keys(raw_text):
                    errors.append(
                        f"{where} {number}: the key {_shown(key)} is given more than once; "
                        "a field holds one value"
                    )
            payload = json.loads(payload_json)
            for key in payload:
                first_seen.setdefault(key, number)
            records.append(payload)
    except parsers.FormatError as exc:
        errors.append(str(exc))
    columns = reader.header if fmt == parsers.CSV else list(first_seen)
    for position, name in enumerate(columns, start=1):
        problem = _name_error(name)
        if problem:
            place = (
                f"line 1, column {position}"
                if fmt == parsers.CSV
                else f"{where} {first_seen[name]}"
            )
            errors.append(f"{place}: {problem}")
    if not errors and not records:
        errors.append("the file holds no records")
    if not errors and not columns:
        errors.append("the records name no fields")
    if errors:
        raise SampleError(_summarised(errors))
    return Sample(filename, fmt, records, columns, more, list(reader.warnings))


# --- Proposing a contract -----------------------------------------------------------------


@dataclass
class ProposedField:
    """One column's proposed contract field, with the evidence for it (counts, masked
    excerpts and notes: never a value of a column that held PII)."""

    name: str
    data_type: str
    required: bool = False
    unique: bool = False
    allowed_values: list[str] = field(default_factory=list)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    max_length: int | None = None
    classification: str | None = None  # a ClassificationLevel's name
    non_empty: int = 0
    distinct: int = 0
    values_with_pii: int = 0
    pii_types: dict[str, int] = field(default_factory=dict)  # type -> values holding it
    examples: list[dict[str, str]] = field(default_factory=list)  # masked, with their type
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """The PII scan found PII in some of its values."""
        return self.values_with_pii > 0

    def contract_entry(self) -> dict[str, Any]:
        return contract_field(
            name=self.name,
            data_type=self.data_type,
            required=self.required,
            unique=self.unique,
            allowed_values=self.allowed_values,
            minimum=self.minimum,
            maximum=self.maximum,
            max_length=self.max_length,
            classification=self.classification,
        )

    def evidence(self) -> dict[str, Any]:
        """What the proposal page shows beside the field: JSON-ready, no value of a
        column that held PII."""
        return {
            "column": self.name,
            "non_empty": self.non_empty,
            "distinct": self.distinct,
            "values_with_pii": self.values_with_pii,
            "pii_types": dict(sorted(self.pii_types.items())),
            "examples": self.examples,
            "notes": self.notes,
        }


@dataclass
class Proposal:
    slug: str
    name: str
    filename: str
    format: str
    records: int
    more: bool
    fields: list[ProposedField]
    warnings: list[str] = field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        """The proposal as a contract document (what import_contract reads)."""
        return contract_document(
            slug=self.slug, name=self.name, fields=[f.contract_entry() for f in self.fields]
        )


def contract_field(
    *,
    name: str,
    data_type: str,
    required: bool = False,
    unique: bool = False,
    allowed_values: Iterable[str] = (),
    minimum: Decimal | str | None = None,
    maximum: Decimal | str | None = None,
    max_length: int | str | None = None,
    classification: str | None = None,
) -> dict[str, Any]:
    """One field of a contract document, its defaults left out as export_contract does.

    Values are passed on as given (a bound as text, a length not a number) for the
    contract's own checks to judge and locate.
    """
    entry: dict[str, Any] = {
        "name": name,
        "type": data_type,
        "required": required,
        "unique": unique,
        "max_length": max_length,
        "allowed_values": list(allowed_values),
        "minimum": plain_decimal(minimum) if isinstance(minimum, Decimal) else minimum,
        "maximum": plain_decimal(maximum) if isinstance(maximum, Decimal) else maximum,
        "classification": classification,
    }
    return {
        key: value
        for key, value in entry.items()
        if key in ("name", "type") or value != FIELD_DEFAULTS[key]
    }


def contract_document(*, slug: str, name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "atlas_contract": CONTRACT_VERSION,
        "dataset": {"slug": slug, "name": name},
        "fields": fields,
    }


def _is_empty(value: Any) -> bool:
    # As the contract reads a value (chart.contract.FieldRule.check): absent or blank.
    return value is None or (isinstance(value, str) and not value.strip())


def _coerce_all(
    coerce: Callable[[Any], Any], values: list[Any], *, stop_after: int
) -> tuple[list[Any], int]:
    """The values coerced, and how many failed (counting stops past `stop_after`)."""
    typed, failed = [], 0
    for value in values:
        try:
            typed.append(coerce(value))
        except CoercionError:
            failed += 1
            if failed > stop_after:
                break
    return typed, failed


@dataclass
class _Column:
    name: str
    values: list[Any]  # the non-empty ones
    records: int
    evidence: FieldEvidence
    candidates: dict[str, list[tuple[str, Match, list[Match]]]]  # pii type -> found


def _infer_type(column: _Column, proposed: ProposedField) -> list[Any]:
    """Set the narrowest type every non-empty value passes; its typed values."""
    values = column.values
    near_miss: tuple[int, str] | None = None
    allowed_misses = int(len(values) * NEAR_MISS_SHARE)
    for data_type in INFERRED_TYPES:
        typed, failed = _coerce_all(COERCERS[data_type], values, stop_after=allowed_misses)
        if not failed:
            proposed.data_type = data_type
            return typed
        if failed <= allowed_misses and (near_miss is None or failed < near_miss[0]):
            near_miss = (failed, data_type)
    proposed.data_type = FieldType.STRING
    typed, failed = _coerce_all(COERCERS[FieldType.STRING], values, stop_after=len(values))
    if failed:
        proposed.notes.append(
            f"{failed:,} values are nested objects or lists, which no contract type "
            "accepts: records holding one would be quarantined"
        )
    elif near_miss is not None:
        count, missed = near_miss
        proposed.notes.append(
            f"all values but {count:,} of {len(values):,} are {TYPE_LABELS[missed]}: "
            f"typed as text (the contract's {missed} would refuse those)"
        )
    return typed


def _distinct_key(value: Any) -> Any:
    return value if isinstance(value, (str, int, bool)) else json.dumps(value, sort_keys=True)


def _bounds(typed: list[Any], proposed: ProposedField) -> None:
    """Minimum and maximum, rounded outwards to the contract's ten decimals so that every
    value stays within them; none when a bound has more digits than a contract holds."""
    numbers = [Decimal(str(value)) for value in typed]
    low, high = min(numbers), max(numbers)
    if abs(low) >= _BOUND_LIMIT or abs(high) >= _BOUND_LIMIT:
        proposed.notes.append("no range proposed: its values exceed what a contract's bounds hold")
        return
    with localcontext(prec=40):  # 20 digits before the point and 10 after fit
        low = low.quantize(_BOUND_PLACES, rounding=ROUND_FLOOR)
        high = high.quantize(_BOUND_PLACES, rounding=ROUND_CEILING)
        proposed.minimum, proposed.maximum = low.normalize(), high.normalize()


def _enum_members(values: list[Any]) -> list[str]:
    """The values of a text column that reads as an enumeration (few distinct values,
    each seen twice on average, none longer than an allowed value may be), else []."""
    members = {COERCERS[FieldType.ENUM](value) for value in values}
    if (
        len(members) <= ENUM_MAX_VALUES
        and len(values) >= 2 * len(members)
        and all(len(member) <= _ALLOWED_VALUE_MAX_LENGTH for member in members)
    ):
        return sorted(members)
    return []


def _propose_field(column: _Column) -> ProposedField:
    proposed = ProposedField(name=column.name, data_type=FieldType.STRING)
    values = column.values
    proposed.non_empty = len(values)
    proposed.required = len(values) == column.records
    evidence = column.evidence
    proposed.values_with_pii = evidence.values_with_pii
    proposed.pii_types = dict(evidence.hits_by_type)
    if not values:
        proposed.notes.append("no value in the sample: typed as text")
        return proposed
    typed = _infer_type(column, proposed)
    all_typed = len(typed) == len(values)  # no nested value left out
    proposed.distinct = len({_distinct_key(value) for value in (typed if all_typed else values)})
    data_type = proposed.data_type
    members = _enum_members(values) if data_type == FieldType.STRING and all_typed else []
    is_enum = bool(members)
    if proposed.flagged:
        _classify(column, proposed)
        withheld = "allowed values, range or length" + (
            f" (it would be an enumeration of {len(members)} values)" if is_enum else ""
        )
        proposed.notes.append(
            f"PII in {proposed.values_with_pii:,} of {column.records:,} values: no {withheld}"
            " proposed, they would put personal values into the contract"
        )
    elif is_enum:
        proposed.data_type = data_type = FieldType.ENUM
        proposed.allowed_values = members
        proposed.distinct = len(members)  # as the enumeration reads them (trimmed)
    elif data_type in (FieldType.INTEGER, FieldType.DECIMAL):
        _bounds(typed, proposed)
    elif data_type in (FieldType.STRING, FieldType.EMAIL) and all_typed:
        proposed.max_length = max(len(value) for value in typed)
    proposed.unique = (
        data_type not in (FieldType.BOOLEAN, FieldType.ENUM)
        and len(values) >= 2
        and proposed.distinct == len(values)
    )
    return proposed


def _classify(column: _Column, proposed: ProposedField) -> None:
    """The level a run's suggestion would name, when enough values held PII; the masked
    excerpts (without the words around them for a level that must be encrypted)."""
    evidence = column.evidence
    level = None
    if evidence.values_with_pii / column.records >= SUGGESTION_MIN_HIT_RATIO:
        level = suggested_level(evidence.hits_by_type)
        proposed.classification = level.name if level is not None else None
    else:
        proposed.notes.append(
            f"PII in fewer than {SUGGESTION_MIN_HIT_RATIO:.0%} of values: no level "
            "suggested (a run would suggest none); choose one if the column holds "
            "personal data"
        )
    context = 0 if level is not None and level.requires_encryption else EXCERPT_CONTEXT
    for pii_type, found in column.candidates.items():
        evidence.examples[pii_type] = [
            masked_excerpt(
                text,
                match.start,
                match.end,
                pii_type=pii_type,
                other_spans=[(m.start, m.end) for m in everything if m is not match],
                context=context,
            )
            for text, match, everything in found
        ]
    proposed.examples = evidence.typed_examples()


def _scan(sample: Sample, patterns: PatternSet) -> dict[str, _Column]:
    """Each column's non-empty values and the PII the promotion's scanner finds in them."""
    columns = {
        name: _Column(name, [], len(sample.records), FieldEvidence(), {}) for name in sample.columns
    }
    for record in sample.records:
        for name, column in columns.items():
            value = record.get(name)
            if _is_empty(value):
                continue
            column.values.append(value)
            _scan_value(column, value, patterns)
    return columns


def _scan_value(column: _Column, value: Any, patterns: PatternSet) -> None:
    found_types: set[str] = set()
    for path, text in _texts(column.name, value):
        matches = scan_value(text, patterns, field_name=path)
        for match in matches:
            found_types.add(match.pii_type)
            kept = column.candidates.setdefault(match.pii_type, [])
            if len(kept) < EXAMPLES:
                kept.append((text, match, matches))
    if found_types:
        evidence = column.evidence
        evidence.values_with_pii += 1
        for pii_type in found_types:
            evidence.hits_by_type[pii_type] = evidence.hits_by_type.get(pii_type, 0) + 1


def _texts(name: str, value: Any) -> Iterable[tuple[str, str]]:
    # The walk the promotion's scan makes of a record (strings, numbers as text, nested
    # values named "a.b" / "a[0]"), for this one column.
    return payload_texts({name: value})


def propose_contract(*, sample: Sample, slug: str, name: str) -> Proposal:
    """The proposed contract of a sample, with each field's evidence."""
    columns = _scan(sample, load_patterns())
    return Proposal(
        slug=slug,
        name=name,
        filename=sample.filename,
        format=sample.format,
        records=len(sample.records),
        more=sample.more,
        fields=[_propose_field(columns[column]) for column in sample.columns],
        warnings=sample.warnings,
    )


def infer_contract(*, file: BinaryIO, filename: str, slug: str, name: str) -> Proposal:
    """Read a sample file (bounded, in memory) and propose its contract; SampleError
    with every problem, located, when the file cannot be a sample."""
    return propose_contract(sample=read_sample(file=file, filename=filename), slug=slug, name=name)


# --- Saving: through the contract import path -------------------------------------------


def slug_in_use(slug: str) -> str | None:
    """Why `slug` cannot name the new dataset (it is already a dataset's), or None."""
    if not Dataset.objects.filter(slug=slug).exists():
        return None
    return (
        f"{slug!r} is already a dataset; choose another slug (to change that dataset's "
        "contract, import a contract file or edit it on its page)"
    )


def _refuse_existing(document: dict[str, Any]) -> list[str]:
    dataset = document.get("dataset") if isinstance(document, dict) else None
    slug = dataset.get("slug") if isinstance(dataset, dict) else None
    problem = slug_in_use(slug) if isinstance(slug, str) else None
    return [f"dataset.slug: {problem}"] if problem else []


def create_dataset_from_contract(
    *, document: dict[str, Any], actor: Any, source: str = ""
) -> ImportResult:
    """Create a new dataset from an inferred (and edited) contract, by import_contract.

    ContractError lists every problem, located as a contract file's are, and nothing is
    written; so is a slug that is already a dataset (this creates, it never replaces).
    """
    with transaction.atomic():
        errors = _refuse_existing(document) + validate_contract(document).errors
        if errors:
            raise ContractError(errors)
        result = import_contract(data=document, actor=actor, source=source)
        if not result.created:  # made by someone else meanwhile: undo, refuse
            raise ContractError(_refuse_existing(document))
    return result


class _RolledBackError(Exception):
    def __init__(self, text: str):
        self.text = text


def contract_file(*, document: dict[str, Any], actor: Any) -> str:
    """The YAML file of the contract saving would create, as export_contract writes it
    (import_contract reads it back the same): the same import, rolled back whole.
    ContractError as create_dataset_from_contract's."""
    try:
        with transaction.atomic():
            result = create_dataset_from_contract(
                document=document, actor=actor, source="a download"
            )
            # Read back as stored: a new instance still holds its defaults as enum members.
            stored = Dataset.objects.get(pk=result.dataset.pk)
            raise _RolledBackError(dump_contracts([export_contract(stored)]))
    except _RolledBackError as done:
        return done.text
