import pytest
from django.core.exceptions import ValidationError

from governance.compliance.regex_safety import check_pattern, compile_safe


@pytest.mark.parametrize(
    ("regex", "message"),
    [
        ("", "empty"),
        ("[a-z", "does not compile: unterminated character set at position 0"),
        ("(abc", "does not compile: missing ), unterminated subpattern at position 0"),
        ("a*", "matches the empty string"),
        ("(x|)", "matches the empty string"),
        ("(a+)+$", "catastrophic backtracking"),
        (r"(\w*)*@", "catastrophic backtracking"),
        (r"^(\d+)*x", "catastrophic backtracking"),
        (r"(a|b)\1", "linear time"),
        (r"foo(?=bar)", "linear time"),
        # Found by an outside probe: 50,000 times slower to scan than the shipped patterns.
        (r"[\s\S]{1,1000}" * 8 + "Z", "counted repeats allow 8,000 repetitions in all"),
        (r"\d{1,600}x\d{1,401}", "allow 1,001 repetitions"),
        (r"(\w{1,50}){1,30}", "allow 1,530 repetitions"),  # nested: 30 x 50, plus the 30
        (r"([\s\S]{1,30}){1,30}Z", "compiles to an RE2 program of 7,264 instructions"),
        (r"[^@]{1,700}@", "compiles to an RE2 program of 6,304 instructions"),
    ],
)
def test_unsafe_or_broken_patterns_are_refused_with_the_reason(regex, message):
    with pytest.raises(ValidationError) as error:
        check_pattern(regex, field="regex")
    assert message in " ".join(error.value.message_dict["regex"])


@pytest.mark.parametrize(
    "regex",
    [r"\b\d{3}-\d{2}-\d{4}\b", r"(?:\d[ -]?){12,18}\d", r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}"],
)
def test_safe_patterns_pass_and_compile_with_re2(regex):
    check_pattern(regex)
    assert compile_safe(regex).search("x 123-45-6789 4111 1111 1111 1111 GB82WEST12345698765432")


def test_counted_repeats_up_to_the_bounds_pass():
    check_pattern(r"\d{1,600}x\d{1,400}")  # 1,000 repetitions, 4,003 instructions
    check_pattern(r"[^@\s]{1,64}@[^@\s]{1,255}\.[a-z]{2,63}")  # an email with RFC lengths
    check_pattern(r"[A-Z]+-\d{1,4}(?:[ -]\d{1,4})*")  # unbounded ones count nothing themselves


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        (r"(a)\1", "invalid escape sequence: \\1."),
        (r"(?=x)a", "invalid perl operator: (?=."),
    ],
)
def test_re2s_reason_reads_as_text(regex, reason):
    """Not a Python bytes repr (b'invalid escape sequence: \\\\1'), not two full stops."""
    with pytest.raises(ValidationError) as error:
        check_pattern(regex, field="regex")
    (message,) = error.value.message_dict["regex"]
    assert message.endswith(f"(backreferences or lookaround): {reason}")
    assert "b'" not in message and ".." not in message
