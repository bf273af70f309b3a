import base64
import hashlib
import re

import pytest

from atlas_site.testing.pii_labelled import labelled_values
from governance.compliance.models import MaskingRule
from governance.compliance.pii.masking import (
    EXCERPT_MAX_LENGTH,
    REDACTED,
    keyed_hash,
    mask,
    mask_matches,
    mask_pii,
    masked_excerpt,
    tag_matches,
)
from governance.compliance.pii.scanner import Match, scan_value, shipped_patterns
from governance.compliance.tokens import TokenKeyring

CARD = "4111 1111 1111 1111"


def test_none_shows_the_value_as_is():
    assert mask(CARD, MaskingRule.NONE) == CARD


def test_partial_keeps_the_last_four_and_the_shape():
    assert mask(CARD, MaskingRule.PARTIAL) == "**** **** **** 1111"
    assert mask("GB82WEST12345698765432", MaskingRule.PARTIAL) == "*" * 18 + "5432"


def test_partial_never_shows_more_than_half_of_a_short_value():
    assert mask("1234", MaskingRule.PARTIAL) == "**34"
    assert mask("ab", MaskingRule.PARTIAL) == "*b"
    assert mask("7", MaskingRule.PARTIAL) == "*"


def test_full_replaces_every_character():
    assert mask("secret value", MaskingRule.FULL) == "*" * 12


def test_redact_replaces_the_value():
    assert mask(CARD, MaskingRule.REDACT) == REDACTED == "[REDACTED]"


def test_hash_is_the_keyed_token_that_still_joins(settings):
    digest = mask(CARD, MaskingRule.HASH)
    assert digest == keyed_hash(CARD) == TokenKeyring.from_settings().token(CARD)
    assert digest != hashlib.sha256(CARD.encode()).hexdigest()  # not guessable without key
    assert CARD not in digest and "1111" not in digest
    # Keyed by ATLAS_HASH_KEY, never by SECRET_KEY.
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789abcdef"
    assert keyed_hash(CARD) == digest
    settings.ATLAS_HASH_KEY = "other:" + base64.b64encode(b"O" * 32).decode()
    assert keyed_hash(CARD) != digest


def test_tagging_replaces_each_match_by_its_type_and_masking_keeps_the_words():
    text = "card 4111 1111 1111 1111 mail ada@example.com ok"
    card = Match("payment_card", None, "card", 5, 24, 0.9)
    email = Match("email", None, "email", 30, 45, 0.9)
    assert tag_matches(text, [email, card]) == "card <payment_card> mail <email> ok"
    masked = mask_matches(text, [card])
    assert masked.startswith("card ") and "4111" not in masked and masked.endswith("ok")


def test_non_strings_are_masked_as_text_and_none_stays_none():
    assert mask(4111111111111111, MaskingRule.PARTIAL) == "************1111"
    assert mask(None, MaskingRule.FULL) is None


def test_an_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="Unknown masking rule"):
        mask(CARD, "scramble")


def test_every_masking_rule_is_handled():
    for rule in MaskingRule.values:
        mask("value", rule)


# --- Excerpts for findings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pii_type", "masked"),
    [
        ("jane.doe@example.com", "email", "j***@example.com"),
        (CARD, "payment_card", "**** **** **** 1111"),
        ("4111111111111111", "payment_card", "************1111"),
        ("123-45-6789", "us_ssn", "***-**-*789"),
        ("10.2.0.1", "ipv4", "**.*.*.1"),
    ],
)
def test_mask_pii_keeps_at_most_a_third_and_never_more_than_four(value, pii_type, masked):
    assert mask_pii(value, pii_type) == masked


def test_an_excerpt_shows_the_words_around_the_masked_pii():
    text = "Customer paid with card 4111 1111 1111 1111 exp 12/27, cvv 123, thanks"
    start = text.index(CARD)
    excerpt = masked_excerpt(text, start, start + len(CARD), pii_type="payment_card")
    assert excerpt == "… paid with card **** **** **** 1111 exp **/**, cvv …"


def test_an_excerpt_masks_the_other_findings_in_the_value():
    text = "mail jane@example.com or call +1 415 555 0134"
    matches = scan_value(text, shipped_patterns())
    email, phone = matches
    excerpt = masked_excerpt(
        text,
        email.start,
        email.end,
        pii_type="email",
        other_spans=[(phone.start, phone.end)],
        context=40,
    )
    assert excerpt == "mail j***@example.com or call +* *** *** ****"


def test_an_excerpt_of_a_long_value_fits_the_finding_column():
    text = "x" * 300 + "@example.com"
    excerpt = masked_excerpt(text, 0, len(text), pii_type="email")
    assert len(excerpt) <= EXCERPT_MAX_LENGTH
    excerpt = masked_excerpt("a" * 1000, 400, 700)
    assert len(excerpt) <= EXCERPT_MAX_LENGTH


def test_an_excerpt_stays_on_one_line():
    text = "line one\ncard 4111111111111111\nline three"
    start = text.index("4111")
    assert "\n" not in masked_excerpt(text, start, start + 16, pii_type="payment_card")


def test_no_excerpt_of_the_labelled_set_contains_the_raw_value():
    patterns = shipped_patterns()
    checked = 0
    for value in labelled_values(3_000):
        matches = scan_value(value.text, patterns, field_name=value.field_name)
        spans = [(m.start, m.end) for m in matches]
        for match in matches:
            raw = value.text[match.start : match.end]
            excerpt = masked_excerpt(
                value.text,
                match.start,
                match.end,
                pii_type=match.pii_type,
                other_spans=[span for span in spans if span != (match.start, match.end)],
            )
            assert raw not in excerpt, (raw, excerpt)
            digits = re.sub(r"\D", "", raw)
            if len(digits) >= 6:
                assert digits not in re.sub(r"\D", "", excerpt), (raw, excerpt)
            checked += 1
    assert checked > 1_000
