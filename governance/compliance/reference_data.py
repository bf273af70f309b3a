"""Reference data the compliance area ships with: classification levels and PII patterns.

Used by the data migration and by anything that must restore it (transactional
tests flush every table). Idempotent: existing rows, possibly edited by stewards,
are left as they are.
"""

from django.apps import apps as global_apps

from governance.compliance.pii.national_ids import NATIONAL_ID_PATTERNS

CLASSIFICATION_LEVELS = [
    # name, rank, requires_encryption, masking, description
    ("public", 10, False, "none", "May be published. No protection needed."),
    ("internal", 20, False, "partial", "For staff only. Partially masked outside the team."),
    ("confidential", 30, False, "full", "Personal or business-sensitive data. Masked by default."),
    (
        "restricted",
        40,
        True,
        "redact",
        "Highest sensitivity. Encrypted at rest; reveals are audited.",
    ),
]

PII_PATTERNS = [
    {
        "name": "Email address",
        "pii_type": "email",
        "regex": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24}",
        "validator": "email_domain",
        "context_words": ["email", "e-mail", "mail", "contact"],
        "confidence": "0.90",
        "min_confidence": "0.50",
        "default_classification": "confidential",
    },
    {
        "name": "Phone number",
        "pii_type": "phone",
        # Candidates only; the phone validator asks libphonenumber. An optional country
        # code (+CC or 00CC) with a bracketed trunk prefix ("+33 (0)3", "+31(0)50"), then
        # an area code in brackets and the rest ("(07773) 190289", "(415) 555-0134"), or
        # digits in four or five groups ("04 57 06 40 42"), in three ("020 7946 0958"),
        # in two ("04744 36143", "+31 6 35331277") or in one run of 7 or more, and an
        # optional extension ("x123", "ext. 12").
        "regex": r"(?:(?:\+|\b00)[1-9]\d{0,2}[ .-]?(?:\(0\)[ .-]?)?)?"
        r"(?:\(\d{1,5}\)[ ./-]?\d{2,8}(?:[ .-]\d{2,8}){0,3}"
        r"|\d{1,5}(?:[ .-]\d{2,5}){3,4}|\d{1,5}[ ./-]?\d{3,8}[ ./-]?\d{3,8}"
        r"|\d{2,5}[ ./-]?\d{5,8}|\d[ ./-]?\d{6,8})"
        r"(?: ?(?:[xX]|[eE]xt\.?) ?\d{1,6})?",
        "validator": "phone",
        "context_words": ["phone", "tel", "mobile", "cell", "call"],
        "confidence": "0.60",
        "min_confidence": "0.50",
        "default_classification": "confidential",
    },
    {
        "name": "US Social Security number",
        "pii_type": "us_ssn",
        # Dashes, or spaces ("463 33 3762"), the same between each group.
        "regex": r"\b\d{3}(?:-\d{2}-| \d{2} )\d{4}\b",
        "validator": "us_ssn",
        "context_words": ["ssn", "social security", "social"],
        "confidence": "0.85",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "Payment card number",
        "pii_type": "payment_card",
        "regex": r"\b(?:\d[ -]?){12,18}\d\b",
        "validator": "luhn",
        "context_words": ["card", "visa", "mastercard", "amex", "credit", "debit"],
        "confidence": "0.90",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "IBAN",
        "pii_type": "iban",
        "regex": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        "validator": "iban_mod97",
        "context_words": ["iban", "account", "bank"],
        "confidence": "0.95",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "IPv4 address",
        "pii_type": "ipv4",
        "regex": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        "validator": "ipv4",
        "context_words": ["ip", "address", "host", "client"],
        "confidence": "0.80",
        "min_confidence": "0.50",
        "default_classification": "internal",
    },
    {
        "name": "IPv6 address",
        "pii_type": "ipv6",
        # Starts at a word boundary or at "::", never at a lone colon: in
        # "ip:2001:db8::1" the address is "2001:db8::1".
        "regex": r"(?:\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
        r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})",
        "validator": "ipv6",
        "context_words": ["ip", "ipv6", "address", "host"],
        "confidence": "0.85",
        "min_confidence": "0.50",
        "default_classification": "internal",
    },
    {
        "name": "Date of birth",
        "pii_type": "date_of_birth",
        "regex": r"\b(?:(?:19|20)\d{2}[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])"
        r"|(?:0[1-9]|[12]\d|3[01])[-/.](?:0[1-9]|1[0-2])[-/.](?:19|20)\d{2})\b",
        "validator": "date",
        "context_words": ["birth", "dob", "born", "birthday"],
        "confidence": "0.40",
        "min_confidence": "0.60",
        "default_classification": "confidential",
    },
    # European national identifiers (governance/compliance/pii/national_ids.py).
    *NATIONAL_ID_PATTERNS,
]


def ensure_classification_levels(apps=global_apps) -> None:
    ClassificationLevel = apps.get_model("compliance", "ClassificationLevel")
    for name, rank, requires_encryption, masking, description in CLASSIFICATION_LEVELS:
        ClassificationLevel.objects.get_or_create(
            name=name,
            defaults={
                "rank": rank,
                "requires_encryption": requires_encryption,
                "masking": masking,
                "description": description,
            },
        )


def ensure_pii_patterns(apps=global_apps) -> None:
    ClassificationLevel = apps.get_model("compliance", "ClassificationLevel")
    PiiPattern = apps.get_model("compliance", "PiiPattern")
    for spec in PII_PATTERNS:
        values = dict(spec)
        level = ClassificationLevel.objects.filter(
            name=values.pop("default_classification")
        ).first()
        PiiPattern.objects.get_or_create(
            name=values.pop("name"), defaults={**values, "default_classification": level}
        )


def ensure_reference_data(apps=global_apps) -> None:
    ensure_classification_levels(apps)
    ensure_pii_patterns(apps)
