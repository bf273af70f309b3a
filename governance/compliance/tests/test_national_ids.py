"""European national identifiers: found when their own check holds, never by shape alone."""

import pytest

from governance.compliance.pii.national_ids import NATIONAL_ID_PATTERNS
from governance.compliance.pii.scanner import scan_value, shipped_patterns

PATTERNS = shipped_patterns()
NATIONAL_TYPES = {spec["pii_type"] for spec in NATIONAL_ID_PATTERNS}


def found(text: str) -> list[tuple[str, str]]:
    return [
        (m.pii_type, text[m.start : m.end]) for m in scan_value(text, PATTERNS, field_name="notes")
    ]


@pytest.mark.parametrize(
    ("text", "pii_type", "value"),
    [
        ("NI number AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
        ("nino: JG103759A", "uk_nino", "JG103759A"),
        ("sécurité sociale 2 95 10 99 126 111 93", "fr_nir", "2 95 10 99 126 111 93"),
        ("NIR 172023201312126", "fr_nir", "172023201312126"),
        ("Steuer-IdNr 36574261809", "de_tax_id", "36574261809"),
        ("BSN 111222333", "nl_bsn", "111222333"),
        ("DNI 18034063Q", "es_dni_nie", "18034063Q"),
        ("NIE X9549656X", "es_dni_nie", "X9549656X"),
        ("codice fiscale RSSMRA85T10A562S", "it_fiscal_code", "RSSMRA85T10A562S"),
        ("VAT DE136695976", "eu_vat", "DE136695976"),
    ],
)
def test_an_identifier_whose_check_holds_is_found(text, pii_type, value):
    assert (pii_type, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "NI number QQ 12 34 56 C",  # Q never starts a National Insurance number
        "NI number GB 12 34 56 C",  # a prefix never allocated
        "sécurité sociale 2 95 10 99 126 111 94",  # the key does not match
        "Steuer-IdNr 36574261808",  # the check digit does not match
        "order number 36574261809",  # eleven digits, no word saying it is a tax id
        "BSN 111222334",  # fails the 11-proof
        "invoice 111222333",  # nine digits, no word saying it is a BSN
        "DNI 18034063A",  # the wrong letter
        "codice fiscale RSSMRA85T10A562T",  # the wrong check character
        "VAT DE136695977",  # the wrong check digit
        "ref XAB123456C9",  # glued to a longer code
    ],
)
def test_a_look_alike_is_not_found(text):
    # (Eleven digits may still be a valid phone number somewhere: that is the phone's call.)
    assert not [pii for pii in found(text) if pii[0] in NATIONAL_TYPES], found(text)


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        # Fifteen digits passing both the NIR's key and Luhn: the NIR, not an airline card.
        ("155095502968780", None, [("fr_nir", "155095502968780")]),
        # Bare nine or eleven digits count in a column named for them, not elsewhere.
        ("280639417", "klant_bsn", [("nl_bsn", "280639417")]),
        ("280639417", None, []),
        ("89170472571", "SteuerIdNr", [("de_tax_id", "89170472571")]),
        # A Spanish VAT number's letters in either case.
        ("ESn37424504", None, [("eu_vat", "ESn37424504")]),
        # A BSN-shaped number named as a BSN is not a Madrid phone number, even when its
        # check fails; with a phone label it is one.
        ("BSN: 913208570", None, []),
        ("Tel: 913208570", None, [("phone", "913208570")]),
        ("VAT FR3R 397800376", None, []),
    ],
)
def test_overlapping_shapes_are_reported_as_what_says_they_are(text, column, expected):
    matches = scan_value(text, PATTERNS, field_name=column)
    assert [(m.pii_type, text[m.start : m.end]) for m in matches] == expected
