"""Checks a steward-entered regex before Atlas runs it over millions of values.

Patterns are executed with RE2 (linear time, no catastrophic backtracking), so a
pattern must be one RE2 accepts. It must also not match the empty string (it would
"find" PII everywhere) and must not nest unbounded repeats, which is what makes
backtracking engines explode and is refused so that a pattern stays safe in any
engine a steward might copy it to.
"""

import re
import re._constants as sre_constants
import re._parser as sre_parse

import re2
from django.core.exceptions import ValidationError

MAX_PATTERN_LENGTH = 2000

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}
_UNBOUNDED = sre_constants.MAXREPEAT


def _error(field: str | None, message: str) -> ValidationError:
    return ValidationError({field: message}) if field else ValidationError(message)


def _nested_unbounded_repeat(parsed, inside_unbounded: bool = False) -> bool:
    for op, value in parsed:
        if op in _REPEATS:
            _low, high, body = value
            unbounded = high == _UNBOUNDED or high > 100
            if unbounded and inside_unbounded and _can_repeat_nonempty(body):
                return True
            if _nested_unbounded_repeat(body, inside_unbounded or unbounded):
                return True
        elif op == sre_constants.SUBPATTERN:
            if _nested_unbounded_repeat(value[-1], inside_unbounded):
                return True
        elif op == sre_constants.BRANCH:
            if any(_nested_unbounded_repeat(branch, inside_unbounded) for branch in value[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT) and _nested_unbounded_repeat(
            value[1], inside_unbounded
        ):
            return True
    return False


def _can_repeat_nonempty(body) -> bool:
    return body.getwidth()[1] > 0


def check_pattern(regex: str, *, field: str | None = None) -> None:
    """Raise ValidationError saying why `regex` is unsafe or unusable; return if it is fine."""
    if not regex or not regex.strip():
        raise _error(field, "The regex is empty.")
    if len(regex) > MAX_PATTERN_LENGTH:
        raise _error(field, f"The regex is longer than {MAX_PATTERN_LENGTH} characters.")
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        position = f" at position {exc.pos}" if exc.pos is not None else ""
        raise _error(field, f"The regex does not compile: {exc.msg}{position}.") from exc
    if compiled.search("") is not None:
        raise _error(
            field,
            "The regex matches the empty string, so it would match every value. "
            "Require at least one character (e.g. use + instead of *).",
        )
    parsed = sre_parse.parse(regex)
    if _nested_unbounded_repeat(parsed):
        raise _error(
            field,
            "The regex risks catastrophic backtracking: it nests unbounded repeats, "
            "like (a+)+ or (\\w*)*. Rewrite it without a repeat inside a repeat.",
        )
    try:
        re2.compile(regex)
    except re2.error as exc:
        raise _error(
            field,
            "The regex uses features that cannot run in guaranteed linear time "
            f"(backreferences or lookaround): {exc}.",
        ) from exc


def compile_safe(regex: str):
    """Compile a checked pattern with RE2, the engine Atlas scans values with."""
    check_pattern(regex)
    return re2.compile(regex)
