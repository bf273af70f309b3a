"""National identifiers of Europe: each candidate confirmed by its own check, not its shape.

The check digits and letters come from python-stdnum, which implements each scheme from
its specification: the French NIR (key mod 97, Corsica 2A/2B), the German tax id (ISO 7064
mod 11,10 and its rule on repeated digits), the Dutch BSN (the "11-proof"), the Spanish DNI
and NIE (the check letter), the Italian codice fiscale (the check character) and EU VAT
numbers (each member state's own check). The UK National Insurance number has no check
digit: HMRC's allocation rules stand in for one (letters never used in a prefix, prefixes
never allocated, a suffix A-D).

Every validator takes the candidate and the text around it, like the others in
governance.compliance.pii.validators, and refuses a candidate that continues a longer code
(letters or digits glued to it).
"""

import re

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn

# HMRC: the first letter is never D, F, I, Q, U or V; the second never D, F, I, O, Q, U or
# V; these prefixes are never allocated.
_NINO = re.compile(r"([A-CEGHJ-PR-TW-Z])([A-CEGHJ-NPR-TW-Z])(\d{6})([A-D])\Z")
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_SEPARATORS = re.compile(r"[ .-]")


def _compact(candidate: str) -> str:
    return _SEPARATORS.sub("", candidate).upper()


def _glued(before: str, after: str) -> bool:
    """The candidate continues a longer code: a letter or digit right before or after it."""
    return bool(before[-1:].isalnum() or after[:1].isalnum())


def uk_nino(candidate: str, before: str = "", after: str = "") -> bool:
    match = _NINO.match(_compact(candidate))
    if match is None or _glued(before, after):
        return False
    return match[1] + match[2] not in _NINO_UNALLOCATED


def fr_nir(candidate: str, before: str = "", after: str = "") -> bool:
    return not _glued(before, after) and nir.is_valid(candidate)


def de_tax_id(candidate: str, before: str = "", after: str = "") -> bool:
    return not _glued(before, after) and idnr.is_valid(candidate)


def nl_bsn(candidate: str, before: str = "", after: str = "") -> bool:
    return not _glued(before, after) and bsn.is_valid(candidate)


def es_dni_nie(candidate: str, before: str = "", after: str = "") -> bool:
    if _glued(before, after):
        return False
    return dni.is_valid(candidate) or nie.is_valid(candidate)


def it_fiscal_code(candidate: str, before: str = "", after: str = "") -> bool:
    return not _glued(before, after) and codicefiscale.is_valid(candidate)


def eu_vat(candidate: str, before: str = "", after: str = "") -> bool:
    return not _glued(before, after) and vat.is_valid(candidate)


# The shipped patterns (reference data, editable by stewards like the others). A candidate
# that a check passes by chance (nine or eleven bare digits) needs a context word.
NATIONAL_ID_PATTERNS = [
    {
        "name": "UK National Insurance number",
        "pii_type": "uk_nino",
        "regex": r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        "validator": "uk_nino",
        "context_words": ["national insurance", "nino", "ni number", "nin"],
        "confidence": "0.85",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "French social security number (NIR)",
        "pii_type": "fr_nir",
        "regex": r"\b[1-478] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab])"
        r" ?\d{3} ?\d{3} ?\d{2}\b",
        "validator": "fr_nir",
        "context_words": ["sécurité sociale", "securite sociale", "nir", "insee", "numéro de sécu"],
        # Above the payment card's 0.90: fifteen digits starting with 1 or 2 that pass the
        # NIR's key (one number in 97) and Luhn (one in ten) are a NIR, not an airline card.
        "confidence": "0.95",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "German tax id (Steuer-IdNr)",
        "pii_type": "de_tax_id",
        # Eleven digits pass their check one time in ten: a context word is needed.
        "regex": r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b",
        "validator": "de_tax_id",
        "context_words": ["steuer", "steuer-id", "steueridentifikationsnummer", "idnr", "tin"],
        "confidence": "0.40",
        "min_confidence": "0.60",
        "default_classification": "restricted",
    },
    {
        "name": "Dutch citizen service number (BSN)",
        "pii_type": "nl_bsn",
        # Nine digits pass the 11-proof one time in eleven: a context word is needed.
        "regex": r"\b\d{4}\.?\d{2}\.?\d{3}\b",
        "validator": "nl_bsn",
        "context_words": ["bsn", "burgerservicenummer", "sofinummer", "sofi"],
        "confidence": "0.40",
        "min_confidence": "0.60",
        "default_classification": "restricted",
    },
    {
        "name": "Spanish DNI / NIE",
        "pii_type": "es_dni_nie",
        "regex": r"\b(?:\d{8}|[XYZxyz]-?\d{7})-?[A-HJ-NP-TV-Za-hj-np-tv-z]\b",
        "validator": "es_dni_nie",
        "context_words": ["dni", "nie", "nif", "documento"],
        "confidence": "0.85",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "Italian codice fiscale",
        "pii_type": "it_fiscal_code",
        "regex": r"\b[A-Za-z]{6}[0-9LMNPQRSTUVlmnpqrstuv]{2}[A-EHLMPR-Ta-ehlmpr-t]"
        r"[0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{3}[A-Za-z]\b",
        "validator": "it_fiscal_code",
        "context_words": ["codice fiscale", "cf", "fiscale"],
        "confidence": "0.90",
        "min_confidence": "0.50",
        "default_classification": "restricted",
    },
    {
        "name": "EU VAT number",
        "pii_type": "eu_vat",
        # A member state's prefix, then its own shape; each state's check decides.
        "regex": r"\b(?:ATU\d{8}|BE[01]\d{9}|BG\d{9,10}|CY\d{8}[A-Z]|CZ\d{8,10}|DE\d{9}"
        r"|DK\d{8}|EE\d{9}|EL\d{9}|ES[A-Za-z0-9]\d{7}[A-Za-z0-9]|FI\d{8}|FR[0-9A-HJ-NP-Z]{2} ?\d{9}"
        r"|HR\d{11}|HU\d{8}|IE\d{7}[A-W][A-I]?|IT\d{11}|LT(?:\d{9}|\d{12})|LU\d{8}|LV\d{11}"
        r"|MT\d{8}|NL\d{9}B\d{2}|PL\d{10}|PT\d{9}|RO\d{2,10}|SE\d{12}|SI\d{8}|SK\d{10})\b",
        "validator": "eu_vat",
        "context_words": ["vat", "btw", "ust-idnr", "tva", "iva", "partita iva", "mwst"],
        "confidence": "0.85",
        "min_confidence": "0.50",
        "default_classification": "confidential",
    },
]


NATIONAL_ID_VALIDATORS = {
    "uk_nino": uk_nino,
    "fr_nir": fr_nir,
    "de_tax_id": de_tax_id,
    "nl_bsn": nl_bsn,
    "es_dni_nie": es_dni_nie,
    "it_fiscal_code": it_fiscal_code,
    "eu_vat": eu_vat,
}
