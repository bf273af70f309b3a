"""Masking of protected values, and masked excerpts for PII findings.

`mask` applies a classification level's masking rule (governance.compliance.models.
MaskingRule) to a whole value: what a person without clearance for the level sees.
`masked_excerpt` shows where PII sits in a value, for the findings stewards review,
without ever containing the PII itself. `tag_matches` is what chart stores of a value
holding PII its field's level does not expect; `mask_matches` what a page shows of one.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from governance.compliance.tokens import TokenKeyring

REDACTED = "[REDACTED]"
MASK_CHAR = "*"
PARTIAL_KEEP = 4

EXCERPT_CONTEXT = 16
EXCERPT_MAX_LENGTH = 200  # chart.PiiFinding.masked_excerpt
_ELLIPSIS = "…"


def mask(value: object, rule: str) -> str | None:
    """`value` as people without the reveal permission may see it under `rule`.

    `rule` is a MaskingRule value: none, partial, full, hash or redact. None stays None.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if rule == "none":
        return text
    if rule == "partial":
        return mask_partial(text)
    if rule == "full":
        return MASK_CHAR * len(text)
    if rule == "hash":
        return keyed_hash(text)
    if rule == "redact":
        return REDACTED
    raise ValueError(f"Unknown masking rule {rule!r}.")


def mask_partial(text: str, keep: int = PARTIAL_KEEP) -> str:
    """Mask letters and digits except the last `keep`; punctuation stays to show the shape.

    Never reveals more than half of the letters and digits, so a short value is not
    shown whole ("1234" -> "**34").
    """
    to_reveal = min(keep, sum(1 for char in text if char.isalnum()) // 2)
    masked = []
    for char in reversed(text):  # from the end, where the revealed characters are
        if not char.isalnum():
            masked.append(char)
        elif to_reveal:
            masked.append(char)
            to_reveal -= 1
        else:
            masked.append(MASK_CHAR)
    return "".join(reversed(masked))


def keyed_hash(text: str) -> str:
    """The value's keyed token (ATLAS_HASH_KEY): equal values look equal, none is readable."""
    return TokenKeyring.from_settings().token(text)


class Span:
    """What masking needs of a PII match: where it is and what it is (scanner.Match fits)."""

    start: int
    end: int
    pii_type: str


def mask_matches(text: str, matches: Sequence[Span]) -> str:
    """The text with each PII match masked in place; the words around it kept."""
    return _replace_spans(text, matches, lambda match: mask_pii(text[match.start : match.end]))


def tag_matches(text: str, matches: Sequence[Span]) -> str:
    """The text with each PII match replaced by its type: "card <payment_card> exp 12/27"."""
    return _replace_spans(text, matches, lambda match: f"<{match.pii_type}>")


def _replace_spans(text: str, matches: Sequence[Span], replacement) -> str:
    parts, position = [], 0
    for match in sorted(matches, key=lambda m: m.start):
        if match.start < position:
            continue  # the scanner never overlaps matches; stay safe if a caller does
        parts.append(text[position : match.start])
        parts.append(replacement(match))
        position = match.end
    parts.append(text[position:])
    return "".join(parts)


def mask_pii(value: str, pii_type: str | None = None) -> str:
    """The PII itself, masked for an excerpt: j***@example.com, ************1111.

    Keeps at most the last 4 letters or digits and never more than a third of them,
    so an excerpt can tell findings apart without disclosing the value.
    """
    if pii_type == "email" and "@" in value:
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}{MASK_CHAR * 3}@{domain}"
    alnum_count = sum(1 for char in value if char.isalnum())
    keep = min(PARTIAL_KEEP, alnum_count // 3)
    kept = 0
    masked = []
    for char in reversed(value):
        if char.isalnum():
            if kept < keep:
                kept += 1
                masked.append(char)
            else:
                masked.append(MASK_CHAR)
        else:
            masked.append(char)
    return "".join(reversed(masked))


def masked_excerpt(
    text: str,
    start: int,
    end: int,
    *,
    pii_type: str | None = None,
    other_spans: Iterable[tuple[int, int]] = (),
    context: int = EXCERPT_CONTEXT,
) -> str:
    """A short excerpt around text[start:end] with that PII masked, for a finding.

    `other_spans` are the value's other findings: they are masked entirely. Digits in
    the surrounding words are masked too, since a CVV or an expiry date next to a card
    number is sensitive even when no pattern reports it.
    """
    pii = mask_pii(text[start:end], pii_type)
    budget = EXCERPT_MAX_LENGTH - 2 * (context + len(_ELLIPSIS))
    if len(pii) > budget:
        half = (budget - len(_ELLIPSIS)) // 2
        pii = pii[:half] + _ELLIPSIS + pii[len(pii) - half :]

    hidden = [(span_start, span_end) for span_start, span_end in other_spans]
    window_start = max(0, start - context)
    window_end = min(len(text), end + context)
    before = _masked_context(text, window_start, start, hidden)
    after = _masked_context(text, end, window_end, hidden)
    prefix = _ELLIPSIS if window_start > 0 else ""
    suffix = _ELLIPSIS if window_end < len(text) else ""
    return f"{prefix}{before}{pii}{after}{suffix}"


def _masked_context(text: str, start: int, end: int, hidden: list[tuple[int, int]]) -> str:
    chars = []
    for index in range(start, end):
        char = text[index]
        if any(span_start <= index < span_end for span_start, span_end in hidden):
            chars.append(MASK_CHAR if char.isalnum() else char)
        elif char.isdigit():
            chars.append(MASK_CHAR)
        elif char.isspace():
            chars.append(" ")  # keep the excerpt on one line
        else:
            chars.append(char)
    return "".join(chars)


@dataclass(frozen=True)
class Piece:
    """A piece of a value as a finding's page shows it: context, another finding, or this one."""

    text: str
    kind: str  # "context", "pii" (another finding, masked) or "finding" (masked, marked)


def marked_value(
    text: str,
    span: tuple[int, int],
    *,
    pii_type: str | None = None,
    other_spans: Iterable[tuple[int, int]] = (),
    context: bool = True,
) -> list[Piece]:
    """The value around one finding, in pieces: the finding's PII masked as in its
    excerpt and marked, the value's other findings masked entirely. `context=False` (a
    reader not cleared for the field's level): the words around are left out, only the
    masked PII shows. Digits in the words around are masked, as in an excerpt."""
    start, end = span
    others = sorted(
        (max(0, a), min(len(text), b))
        for a, b in other_spans
        if b <= start or a >= end  # overlapping spans are the finding itself
    )
    pieces: list[Piece] = []
    position = 0
    for a, b, kind in sorted([*((a, b, "pii") for a, b in others), (start, end, "finding")]):
        if a < position:
            continue
        if a > position:
            between = _masked_context(text, position, a, [])
            pieces.append(Piece(between if context else _ELLIPSIS, "context"))
        masked = (
            mask_pii(text[a:b], pii_type)
            if kind == "finding"
            else "".join(MASK_CHAR if char.isalnum() else char for char in text[a:b])
        )
        pieces.append(Piece(masked, kind))
        position = b
    if position < len(text):
        after = _masked_context(text, position, len(text), [])
        pieces.append(Piece(after if context else _ELLIPSIS, "context"))
    return pieces
