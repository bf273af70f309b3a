r"""Finds PII in string values with the stewards' patterns.

A pattern's regex finds candidates, its validator confirms them, context words near
the value (or in the field's name) raise the confidence, and the pattern's
min_confidence decides what is reported. Overlapping findings are resolved in
favour of the more confident, then the longer one.

Speed matters: a promotion scans every string of every record. Most values hold no
PII, so one RE2 Set pass over the value first tells which patterns can match at all;
only those run their own regex, on the UTF-8 bytes.

Patterns come either from the database (`load_patterns`, used by the pipeline) or
from plain dicts (`compile_patterns`, used by tests and the benchmark, no database).

Time per value is bounded twice, so that one pathological value or pattern cannot
stall a promotion:
- A pattern must stay within regex_safety's bounds (counted repeats, RE2 program size)
  to be saved, tried or scanned with: that refuses the patterns that are thousands of
  times slower per byte (one stored before the bounds existed fails the scan with its
  reason, as any unusable pattern does, instead of slowing every promotion).
- A value longer than WINDOW_BYTES (8 KiB in UTF-8) is scanned window by window, each
  window reaching OVERLAP_BYTES into the next (a match up to 1 KiB long is found
  exactly as in one pass over the value, with the text around it as context), and its
  scan stops once it has taken SCAN_BUDGET_SECONDS (50 ms): the windows not reached are
  not scanned, and a warning says so (the field, the length and where the scan
  stopped, never the value; at most once a minute per process). The shipped patterns
  scan about 1 MB in that time, so only a pathological pattern or a huge value meets
  it; a pattern within the bounds can still cost ~10 us per byte on some text (e.g.
  `[ab][\s\S]{1,600}Z`), and this caps what one value costs at about 0.1 s.
Values up to WINDOW_BYTES are scanned in one pass, as are the labelled values of
bench/pii_accuracy.py.
"""

import bisect
import logging
import re
import re._parser as sre_parse
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import re2

from governance.compliance.pii.validators import Validator, get_validator
from governance.compliance.reference_data import PII_PATTERNS
from governance.compliance.regex_safety import check_pattern

# How far before a match context words are looked for.
CONTEXT_WINDOW = 30
# Added once when a context word is near the value or in its field's name. The shipped
# date-of-birth pattern (confidence 0.40, threshold 0.60) is meant to count only with
# context, so the boost must be more than 0.20.
CONTEXT_BOOST = 0.25

# A candidate is compared with the matches confirmed before it (to skip its check when
# it would lose to one) while there are this few: a value with thousands of matches
# would make that quadratic, and _without_overlaps resolves them all anyway.
FEW_MATCHES = 8

# Long values are scanned in windows, within a time budget (see the module doc).
WINDOW_BYTES = 8 * 1024
OVERLAP_BYTES = 1024
SCAN_BUDGET_SECONDS = 0.05
CUT_WARNING_INTERVAL = 60.0

_SURROGATES = re.compile("[\ud800-\udfff]")
_FIELD_CONTEXT_CACHE_SIZE = 10_000

logger = logging.getLogger(__name__)
# Values whose scan stopped at its budget, in this process: how many, and when one was
# last logged.
_cut = {"values": 0, "logged_at": float("-inf")}


class InvalidPatternError(ValueError):
    """A PII pattern that cannot be used; scanning without it would miss PII silently."""


class Match(NamedTuple):
    """One PII finding in a value. Holds positions, never the value itself.

    A named tuple because a busy promotion creates one per finding.
    """

    pii_type: str
    pattern_id: int | None
    pattern_name: str
    start: int
    end: int
    confidence: float


@dataclass(frozen=True, eq=False)
class CompiledPattern:
    id: int | None
    name: str
    pii_type: str
    regex: Any  # an RE2 regexp: linear time whatever the input
    validator: Validator
    context: re.Pattern[str] | None
    confidence: float
    min_confidence: float
    boosted_confidence: float  # with a context word
    find_spans: Callable[..., Iterator[tuple[int, int]]] = field(repr=False)
    shortest: int = 1  # the fewest characters a match can have
    # Field names repeat for every record, so their context check is done once each.
    _field_context: dict[str, bool] = field(default_factory=dict, repr=False)

    def has_context_before(self, text: str, start: int) -> bool:
        if self.context is None or start == 0:
            return False
        window = text[max(0, start - CONTEXT_WINDOW) : start].lower()
        return self.context.search(window) is not None

    def in_context(self, text: str, start: int, field_name: str | None) -> bool:
        """A context word in the field's name or just before the candidate."""
        return self.has_field_context(field_name) or self.has_context_before(text, start)

    def has_field_context(self, field_name: str | None) -> bool:
        if self.context is None or not field_name:
            return False
        known = self._field_context.get(field_name)
        if known is None:
            known = self.context.search(words_of_field_name(field_name)) is not None
            if len(self._field_context) > _FIELD_CONTEXT_CACHE_SIZE:  # e.g. "items[12345]"
                self._field_context.clear()
            self._field_context[field_name] = known
        return known


def words_of_field_name(field_name: str) -> str:
    """customerEmail, date_of_birth, IP-Address -> "customer email", "date of birth", ..."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", field_name)
    return re.sub(r"[_\-.\[\]\s]+", " ", spaced).lower()


def _context_regex(words: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = []
    for word in words:
        word = word.strip().lower()
        if word:
            # "social security" also matches "social_security" and "social-security".
            alternatives.append(r"[\s_-]+".join(re.escape(part) for part in word.split()))
    if not alternatives:
        return None
    # Python's re is fine here: escaped literals in one alternation over a short window
    # cannot backtrack catastrophically. Plurals ("emails") count too.
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")s?(?![a-z0-9])")


def _min_width(pattern: str) -> int:
    """The fewest characters a match of `pattern` can have (1 if Python cannot tell).

    Python's own parser reads the RE2 syntax the shipped patterns use; a match of n
    characters has at least n bytes in UTF-8, so fewer bytes left than this cannot match.
    """
    try:
        return max(1, sre_parse.parse(pattern).getwidth()[0])
    except (re.error, OverflowError, RecursionError, ValueError):
        return 1


def _span_finder(regex: Any, shortest: int) -> Callable[..., Iterator[tuple[int, int]]]:
    """Non-overlapping match spans of `regex` in UTF-8 bytes (from `pos` to `endpos`, the
    rest of the bytes being context for \\b, ^ and $).

    Calls the compiled RE2 object directly when the wrapper exposes it: the wrapper's
    finditer costs about three times as much per call, and a scan has a budget of a few
    microseconds per value. Falls back to finditer if a google-re2 release renames it.
    A call costs about 0.7 us even where nothing is left to match, so none is made once
    fewer bytes are left than the shortest match (most values end with their PII).
    """
    raw = getattr(regex, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if raw is None or anchor is None:
        return lambda subject, pos=0, endpos=None: (
            found.span() for found in regex.finditer(subject, pos, endpos)
        )

    def find_spans(
        subject: bytes, pos: int = 0, endpos: int | None = None
    ) -> Iterator[tuple[int, int]]:
        position, end = pos, len(subject) if endpos is None else endpos
        while end - position >= shortest:
            match_start, match_end = raw.Match(anchor, subject, position, end)[0]
            if match_start < 0:
                return
            yield match_start, match_end
            # Patterns cannot match empty text (check_pattern), but never loop forever.
            position = match_end if match_end > match_start else match_end + 1

    return find_spans


def compile_pattern(spec: Mapping[str, Any]) -> CompiledPattern:
    """Build a pattern from a PiiPattern row's values or a reference_data dict."""
    name = spec["name"]
    try:
        check_pattern(spec["regex"])
        regex = re2.compile(spec["regex"])
        validator = get_validator(spec.get("validator") or "none")
    except Exception as exc:
        raise InvalidPatternError(f"PII pattern {name!r} cannot be used: {exc}") from exc
    confidence = float(spec.get("confidence", 0.8))
    shortest = _min_width(spec["regex"])
    return CompiledPattern(
        id=spec.get("id"),
        name=name,
        pii_type=spec["pii_type"],
        regex=regex,
        validator=validator,
        context=_context_regex(spec.get("context_words") or ()),
        confidence=confidence,
        min_confidence=float(spec.get("min_confidence", 0.5)),
        boosted_confidence=round(min(1.0, confidence + CONTEXT_BOOST), 2),
        find_spans=_span_finder(regex, shortest),
        shortest=shortest,
    )


class PatternSet:
    """Compiled patterns plus an RE2 Set over all of them, to skip values that hold no PII."""

    def __init__(self, patterns: Iterable[CompiledPattern]) -> None:
        # Most confident first (as they can be with a context word): a candidate that a
        # more confident match already covers would lose to it, so scan_value skips it
        # without running its validator.
        self.patterns: tuple[CompiledPattern, ...] = tuple(
            sorted(patterns, key=lambda p: (-p.boosted_confidence, -p.confidence))
        )
        self._prefilter = None
        if self.patterns:
            prefilter = re2.Set.SearchSet()
            for pattern in self.patterns:
                prefilter.Add(pattern.regex.pattern)
            prefilter.Compile()
            self._prefilter = prefilter
            # The C++ set's Match, without the wrapper's type check (a fifth of the cost).
            inner = getattr(prefilter, "_set", None)
            self._match = inner.Match if inner is not None else prefilter.Match

    def __len__(self) -> int:
        return len(self.patterns)

    def __iter__(self) -> Iterator[CompiledPattern]:
        return iter(self.patterns)

    def candidates(self, encoded: bytes) -> list[CompiledPattern]:
        """The patterns whose regex matches somewhere in the UTF-8 encoded value."""
        if self._prefilter is None:
            return []
        indexes = self._match(encoded)
        if not indexes:
            return []
        if len(indexes) == 1:
            return [self.patterns[indexes[0]]]
        return [self.patterns[index] for index in sorted(indexes)]


def compile_patterns(specs: Iterable[Mapping[str, Any]]) -> PatternSet:
    """Patterns from dicts shaped like reference_data.PII_PATTERNS; disabled ones are left out."""
    return PatternSet(compile_pattern(spec) for spec in specs if spec.get("enabled", True))


def shipped_patterns() -> PatternSet:
    """The patterns Atlas ships with, without a database (benchmark, tests)."""
    return compile_patterns(PII_PATTERNS)


SCAN_FIELDS = (
    "id",
    "name",
    "pii_type",
    "regex",
    "validator",
    "context_words",
    "confidence",
    "min_confidence",
)
_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "patterns": None}


def load_patterns() -> PatternSet:
    """The enabled PiiPattern rows, compiled; recompiled only when a row changed.

    The cache key is the content of every column the scanner uses, read with one small
    query per call, so a steward's edit applies to the next call in every process
    without a restart. (updated_at alone would miss QuerySet.update(), which does not
    touch auto_now fields.)
    """
    # Imported here: the scanner itself runs without Django (bench/pii_accuracy.py); only
    # this reads the patterns from the database.
    from governance.compliance.models import PiiPattern  # noqa: PLC0415

    rows = list(PiiPattern.objects.filter(enabled=True).order_by("id").values(*SCAN_FIELDS))
    key = tuple(
        tuple(tuple(value) if isinstance(value, list) else value for value in row.values())
        for row in rows
    )
    with _cache_lock:
        if _cache["key"] != key:
            _cache["patterns"] = compile_patterns(rows)
            _cache["key"] = key
        return _cache["patterns"]


def scan_value(text: str, patterns: PatternSet, *, field_name: str | None = None) -> list[Match]:
    """PII found in one string, by position, without overlaps, at or above each threshold.

    A value longer than WINDOW_BYTES is scanned in windows within SCAN_BUDGET_SECONDS
    (see the module doc).
    """
    if len(text) < 2:
        return []
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # lone surrogates from JSON; same length, so offsets hold
        text = _SURROGATES.sub("\ufffd", text)
        encoded = text.encode()
    if len(encoded) > WINDOW_BYTES:
        found = _windowed_spans(encoded, patterns, field_name)
    else:
        candidates = patterns.candidates(encoded)
        if not candidates:
            return []
        found = [(pattern, pattern.find_spans(encoded)) for pattern in candidates]
    ascii_only = len(encoded) == len(text)

    matches: list[Match] = []
    for pattern, spans in found:
        if matches and len(matches) <= FEW_MATCHES and _no_room_left(matches, len(text), pattern):
            continue
        needs_context = pattern.confidence < pattern.min_confidence
        for start, end in spans:
            if not ascii_only:  # byte offsets -> character offsets
                start = len(encoded[:start].decode())
                end = len(encoded[:end].decode())
            if (
                matches
                and len(matches) <= FEW_MATCHES
                and _would_lose(matches, pattern, text, start, end, field_name)
            ):
                continue
            # A pattern that counts only with a context word looks for it first: most of
            # its candidates (nine or eleven bare digits) have none, and their check is
            # not worth running.
            if needs_context and not pattern.in_context(text, start, field_name):
                continue
            before = text[max(0, start - CONTEXT_WINDOW) : start]
            verdict = pattern.validator(text[start:end], before, text[end : end + CONTEXT_WINDOW])
            if not verdict:
                continue
            if verdict is not True:  # only the first `verdict` characters are the PII
                end = start + int(verdict)
            confidence = pattern.confidence
            if needs_context or (
                pattern.boosted_confidence != confidence
                and pattern.in_context(text, start, field_name)
            ):
                confidence = pattern.boosted_confidence
            if confidence < pattern.min_confidence:
                continue
            matches.append(
                Match(pattern.pii_type, pattern.id, pattern.name, start, end, confidence)
            )
    return _without_overlaps(matches)


def _would_lose(
    matches: list[Match],
    pattern: CompiledPattern,
    text: str,
    start: int,
    end: int,
    field_name: str | None,
) -> bool:
    """A confirmed match more confident than this candidate can be overlaps it: it would
    lose, so its check is not worth running."""
    stronger = _strongest_overlap(matches, start, end)
    return stronger > pattern.boosted_confidence or (
        stronger > pattern.confidence and not pattern.in_context(text, start, field_name)
    )


def _no_room_left(matches: list[Match], length: int, pattern: CompiledPattern) -> bool:
    """A match more confident than `pattern` can be leaves too little text on either side
    for one of its matches: every candidate would overlap it and lose, so the pattern's
    regex is not run (a value holding one IBAN is not searched for phone numbers)."""
    for match in matches:
        if (
            match.confidence > pattern.boosted_confidence
            and match.start < pattern.shortest
            and length - match.end < pattern.shortest
        ):
            return True
    return False


def _strongest_overlap(matches: list[Match], start: int, end: int) -> float:
    """The confidence of the most confident match overlapping start-end (0 for none)."""
    strongest = 0.0
    for match in matches:
        if match.start < end and start < match.end and match.confidence > strongest:
            strongest = match.confidence
    return strongest


def _windowed_spans(
    encoded: bytes, patterns: PatternSet, field_name: str | None
) -> list[tuple[CompiledPattern, list[tuple[int, int]]]]:
    """(pattern, [span]) of the matches in a long value, window by window, within the budget.

    A window owns the matches that start in its first WINDOW_BYTES - OVERLAP_BYTES bytes
    and searches OVERLAP_BYTES further, so that those matches are whole; each pattern
    goes on after the end of its last match, as one pass would. The prefilter sees the
    window with a byte of context on either side (for \\b, \\B and line anchors).
    """
    size = len(encoded)
    step = WINDOW_BYTES - OVERLAP_BYTES
    deadline = time.perf_counter() + SCAN_BUDGET_SECONDS
    resume: dict[int, int] = {}  # id(pattern) -> where its next match may start
    found = []
    for start in range(0, size, step):
        if start and time.perf_counter() > deadline:
            _note_cut(size, start, field_name)
            break
        end = min(size, start + WINDOW_BYTES)
        owned_end = size if end == size else start + step
        window = encoded[max(0, start - 1) : min(size, end + 1)]
        for pattern in patterns.candidates(window):
            position = max(start, resume.get(id(pattern), 0))
            spans = []
            for span in pattern.find_spans(encoded, position, end):
                if span[0] >= owned_end:
                    break
                spans.append(span)
                resume[id(pattern)] = span[1] if span[1] > span[0] else span[1] + 1
            if spans:
                found.append((pattern, spans))
        if end == size:
            break
    return found


def _note_cut(size: int, stopped_at: int, field_name: str | None) -> None:
    _cut["values"] += 1
    now = time.monotonic()
    if now - _cut["logged_at"] >= CUT_WARNING_INTERVAL:
        _cut["logged_at"] = now
        logger.warning(
            "PII scan: a value of %d bytes (field %s) took longer than %.0f ms to scan; "
            "bytes %d and after were not scanned. %d such values in this process so far",
            size,
            field_name or "-",
            SCAN_BUDGET_SECONDS * 1000,
            stopped_at,
            _cut["values"],
        )


def values_cut_short() -> int:
    """How many values this process stopped scanning at SCAN_BUDGET_SECONDS."""
    return _cut["values"]


def _without_overlaps(matches: list[Match]) -> list[Match]:
    """Keep the most confident (then longest) of overlapping matches, in text order."""
    if len(matches) < 2:
        return matches
    # The kept matches never overlap, so sorted by start their ends are sorted too: a
    # match overlaps one of them only if it overlaps the last one starting before its
    # end. (Comparing with every kept match made a value with thousands of candidates,
    # e.g. megabytes of text, cost seconds.)
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Match] = []
    for match in sorted(matches, key=lambda m: (-m.confidence, m.start - m.end, m.start)):
        before = bisect.bisect_left(starts, match.end) - 1
        if before >= 0 and ends[before] > match.start:
            continue
        starts.insert(before + 1, match.start)
        ends.insert(before + 1, match.end)
        kept.insert(before + 1, match)
    return kept


def scan_values(
    values: Iterable[str], patterns: PatternSet, *, field_name: str | None = None
) -> list[list[Match]]:
    """scan_value for many values of one field (or of no particular field)."""
    return [scan_value(value, patterns, field_name=field_name) for value in values]


def scan_record(record: Mapping[str, Any], patterns: PatternSet) -> dict[str, list[Match]]:
    """PII per field of a record: strings and numbers, nested ones named "a.b" / "a[0]".

    Numbers are scanned as text because card numbers and phone numbers often arrive
    as JSON numbers.
    """
    found = {}
    for field_name, text in payload_texts(record):
        matches = scan_value(text, patterns, field_name=field_name)
        if matches:
            found[field_name] = matches
    return found


def payload_texts(payload: Any) -> Iterator[tuple[str, str]]:
    """(field name, text) of every value of a record the PII scan reads: the one walk.

    Strings, and numbers as text (card and phone numbers arrive as JSON numbers too);
    nested values are named "a.b" and "a[0]"; booleans and nulls hold no PII. A payload
    that is not an object of named fields (a JSON list or scalar) yields nothing.
    """
    if not isinstance(payload, Mapping):
        return
    for key, value in payload.items():
        if isinstance(value, str):
            yield key, value  # flat string fields are the common case: no walk
        else:
            yield from _texts_of(value, str(key))


def _texts_of(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield path, str(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts_of(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _texts_of(item, f"{path}[{index}]")
