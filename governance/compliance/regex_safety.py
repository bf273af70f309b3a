r"""Checks a steward-entered regex before Atlas runs it over millions of values.

Patterns are executed with RE2 (linear time, no catastrophic backtracking), so a
pattern must be one RE2 accepts. It must also not match the empty string (it would
"find" PII everywhere) and must not nest unbounded repeats, which is what makes
backtracking engines explode and is refused so that a pattern stays safe in any
engine a steward might copy it to.

Linear time is not fast enough on its own: RE2 unrolls a counted repeat such as
`[\s\S]{1,1000}` into a thousand copies, and a pattern that strings several of them
together (or nests one in another) compiles to a program of tens of thousands of
instructions whose DFA outgrows its memory, so RE2 falls back to simulating the whole
program at every byte: an outside probe's `[\s\S]{1,1000}` x 8 then `Z` scanned a
2 KB value in 166 ms, 50,000 times slower than the shipped patterns. Two bounds refuse
such patterns, each with its reason: the counted repeats may allow at most
MAX_COUNTED_REPEATS repetitions in all (a repeat's upper bound, multiplied by those of
the repeats around it, summed over the pattern), and the RE2 program (forwards and
backwards) may hold at most MAX_PROGRAM_SIZE instructions. The shipped patterns use at
most 263 repetitions (the EU VAT number's 27 member-state shapes) and 338 instructions.
"""

import re
import re._constants as sre_constants
import re._parser as sre_parse

import re2
from django.core.exceptions import ValidationError

MAX_PATTERN_LENGTH = 2000
MAX_COUNTED_REPEATS = 1000
MAX_PROGRAM_SIZE = 5000

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}
_UNBOUNDED = sre_constants.MAXREPEAT


# RE2 would also print each refused pattern to stderr; the refusal says it to the person.
_QUIET = re2.Options()
_QUIET.log_errors = False


def _re2_reason(exc: Exception) -> str:
    """RE2's reason as text ("invalid escape sequence: \\1"), not a bytes repr, no end dot."""
    reason = exc.args[0] if exc.args else str(exc)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason).rstrip(".")


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


def counted_repeats(parsed, factor: int = 1) -> int:
    """Repetitions the counted repeats ({m,n}, ?) of a parsed pattern allow, in all.

    Each bounded repeat adds its upper bound times the bounds of the repeats around it;
    an unbounded one (+, *, {m,}) adds nothing itself, its body counts once.
    """
    total = 0
    for op, value in parsed:
        if op in _REPEATS:
            _low, high, body = value
            if high == _UNBOUNDED:
                total += counted_repeats(body, factor)
            else:
                total += factor * high + counted_repeats(body, factor * high)
        elif op == sre_constants.SUBPATTERN:
            total += counted_repeats(value[-1], factor)
        elif op == sre_constants.BRANCH:
            total += sum(counted_repeats(branch, factor) for branch in value[1])
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            total += counted_repeats(value[1], factor)
    return total


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
    repeats = counted_repeats(parsed)
    if repeats > MAX_COUNTED_REPEATS:
        raise _error(
            field,
            f"The regex's counted repeats allow {repeats:,} repetitions in all, more than "
            f"the {MAX_COUNTED_REPEATS:,} allowed: each {{m,n}} counts n, times the bounds of "
            "the repeats around it. Large counted repeats make scanning every value "
            "thousands of times slower; use smaller bounds, or + and * where the length "
            "does not matter.",
        )
    try:
        compiled = re2.compile(regex, _QUIET)
    except re2.error as exc:
        raise _error(
            field,
            "The regex uses features that cannot run in guaranteed linear time "
            f"(backreferences or lookaround): {_re2_reason(exc)}.",
        ) from exc
    size = max(compiled.programsize, compiled.reverseprogramsize)
    if size > MAX_PROGRAM_SIZE:
        raise _error(
            field,
            f"The regex compiles to an RE2 program of {size:,} instructions, more than the "
            f"{MAX_PROGRAM_SIZE:,} allowed: a program that large makes scanning every value "
            "slow. Use smaller counted repeats or fewer alternatives.",
        )


def compile_safe(regex: str):
    """Compile a checked pattern with RE2, the engine Atlas scans values with."""
    check_pattern(regex)
    return re2.compile(regex)
