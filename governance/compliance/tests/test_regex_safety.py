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
