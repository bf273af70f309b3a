"""Validators that confirm or reject a regex candidate for one kind of PII.

A regex only says "this looks like a card number"; a validator says whether it can
be one. Every validator has the same signature so the scanner can call any of them:

    validator(candidate, before, after) -> bool | int

`before` and `after` are a little of the text around the candidate, for the rules
that depend on where a value sits (an IPv4 inside "1.2.3.4.5" is a version number).
True accepts the candidate, False rejects it, and a number accepts only that many
leading characters: the IBAN regex can take in a word that follows ("... 1332 EUR").

RE2 matches ASCII digits only, so the validators count ASCII digits only as well.
This module does not import Django, so it can be used (and tested) without a database
(the phone validator reads ATLAS_PHONE_REGIONS from Django's settings when they are
configured, from the environment otherwise).
"""

import functools
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime

import phonenumbers

from governance.compliance.pii.national_ids import NATIONAL_ID_VALIDATORS

Validator = Callable[[str, str, str], bool | int]

ASCII_DIGITS = frozenset("0123456789")
ASCII_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


_NOT_DIGITS = re.compile(r"[^0-9]")


def _digits(candidate: str) -> str:
    return _NOT_DIGITS.sub("", candidate)


def no_validation(candidate: str, before: str = "", after: str = "") -> bool:
    return True


# "GB29 NWBK 6016 1331 9268 19": the digits after "NWBK " are the middle of an IBAN, not
# a card or a phone number on their own.
_IBAN_HEAD = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4})*[ -]?\Z")
_IBAN_HEAD_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"


def _continues_a_longer_code(before: str) -> bool:
    """True when the text just before a candidate shows it is the tail of a longer number."""
    if before[-1:] in (" ", "-") and before[-2:-1] in ASCII_DIGITS:
        return True
    # The IBAN head is searched for only in the run of capitals, digits, spaces and dashes
    # the text ends with (most text before a candidate ends with a word in lower case).
    head = before[len(before.rstrip(_IBAN_HEAD_CHARACTERS)) :]
    return len(head) >= 4 and _IBAN_HEAD.search(before[-len(head) - 1 :]) is not None


# --- Payment cards -----------------------------------------------------------------

# Issuer prefixes (IIN ranges) and the lengths each issues. Luhn alone lets one random
# number in ten through; requiring a real issuer prefix removes about half of those
# without losing a real card.
CARD_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = (
    # (first prefix, last prefix, allowed lengths); prefixes of equal digit count
    (4, 4, frozenset({13, 16, 19})),  # Visa (19 digits: Visa Electron and debit)
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),  # American Express
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),  # Diners Club
    (38, 39, frozenset(range(14, 20))),  # Diners Club
    # JCB issues from 3528-3589; test-card generators (Faker among them) and some
    # co-branded ranges write the whole 35 block, and a Luhn-valid 16-19 digit number
    # there is a card whoever issued it.
    (35, 35, frozenset(range(16, 20))),  # JCB
    (2131, 2131, frozenset({15})),  # JCB, 15 digits
    (1800, 1800, frozenset({15})),  # JCB, 15 digits
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),  # Discover
    (65, 65, frozenset(range(16, 20))),  # Discover, RuPay
    (622126, 622925, frozenset(range(16, 20))),  # Discover (UnionPay co-branded)
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (50, 50, frozenset(range(12, 20))),  # Maestro
    (56, 69, frozenset(range(12, 20))),  # Maestro (5018, 6759, 6761-6763, ...) and other 5x/6x
    (1, 1, frozenset({15})),  # UATP (airline cards)
)


# Each digit doubled, less 9 when that makes two digits: the Luhn step for every second
# digit from the right.
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_checksum_ok(digits: str | bytes) -> bool:
    """The Luhn check of ASCII digits (summed as bytes: ord("0") is 48)."""
    if isinstance(digits, str):
        digits = digits.encode()
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(digits[::-2]) + sum(doubled) - 48 * len(digits)) % 10 == 0


# CARD_ISSUERS by the digit count of their prefixes: a card number is looked up once per
# prefix length, not once per issuer.
_ISSUERS_BY_PREFIX_LENGTH: tuple[tuple[int, tuple[tuple[int, int, frozenset[int]], ...]], ...] = (
    tuple(
        (size, tuple(issuer for issuer in CARD_ISSUERS if len(str(issuer[0])) == size))
        for size in sorted({len(str(first)) for first, _, _ in CARD_ISSUERS})
    )
)


def card_issuer_known(digits: str | bytes) -> bool:
    length = len(digits)
    for size, issuers in _ISSUERS_BY_PREFIX_LENGTH:
        prefix = int(digits[:size])
        for first, last, lengths in issuers:
            if first <= prefix <= last and length in lengths:
                return True
    return False


def luhn(candidate: str, before: str = "", after: str = "") -> bool:
    """A payment card number: 12-19 digits, a known issuer prefix, a valid Luhn check digit."""
    # As bytes: bytes.translate deletes characters at a tenth of str.translate's cost, and
    # bytes.isdigit() is true for ASCII digits only.
    digits = candidate.encode().translate(None, b" -")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        return False
    if _continues_a_longer_code(before) or len(set(digits)) == 1:
        return False
    return card_issuer_known(digits) and luhn_checksum_ok(digits)


# --- IBAN --------------------------------------------------------------------------

# Total IBAN length per country, from the SWIFT IBAN registry (ISO 13616).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


# Letters count as two digits: A=10 ... Z=35.
_IBAN_LETTERS = str.maketrans({chr(ord("A") + n): str(10 + n) for n in range(26)})


def iban_check_value(iban: str) -> int:
    """The ISO 7064 mod-97 remainder of a compact IBAN; 1 for a valid one."""
    return int((iban[4:] + iban[:4]).translate(_IBAN_LETTERS)) % 97


def iban_mod97(candidate: str, before: str = "", after: str = "") -> bool | int:
    """An IBAN: a known country, that country's length, and ISO 13616 mod-97 check digits.

    The shipped regex ends with an optional short group, so in "ES91 2100 0418 4502 0005
    1332 EUR" it takes in " EUR"; then only the part before that word is the IBAN.
    """
    if is_iban(candidate):
        return True
    head, separator, word = candidate.rpartition(" ")
    if separator and word.isalpha() and is_iban(head):
        return len(head)
    return False


def is_iban(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    if not (iban.isascii() and iban.isalnum() and iban[2:4].isdigit()):
        return False
    # Check digits 00, 01 and 99 are never issued.
    if not 2 <= int(iban[2:4]) <= 98:
        return False
    return iban_check_value(iban) == 1


# --- US Social Security number -----------------------------------------------------


def us_ssn(candidate: str, before: str = "", after: str = "") -> bool:
    """A US SSN: never area 000, 666 or 900-999, group 00 or serial 0000."""
    digits = candidate.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not (digits.isascii() and digits.isdigit()):
        return False
    area = digits[:3]
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and digits[3:5] != "00"
        and digits[5:] != "0000"
    )


# --- IP addresses ------------------------------------------------------------------

# "version 10.2.0.1", "firmware 2.4.10.1": a dotted quad named as a version is not an IP.
_VERSION_WORD_BEFORE = re.compile(
    r"(?:^|[^a-z])(?:v|ver|version|release|rel|build|firmware|fw|rev|revision|patch|"
    r"update|kernel|driver|sdk|api)\s*[:=#]?\s*$",
    re.IGNORECASE,
)


def ipv4(candidate: str, before: str = "", after: str = "") -> bool:
    """A dotted-quad IPv4 address that is not part of a version string or a longer number."""
    octets = candidate.split(".")
    if len(octets) != 4:
        return False
    for octet in octets:
        if not octet or len(octet) > 3 or not set(octet) <= ASCII_DIGITS:
            return False
        if len(octet) > 1 and octet[0] == "0":  # 01.02.03.04 is not how an address is written
            return False
        if int(octet) > 255:
            return False
    # Glued to a letter, digit or dot it is part of something longer: v1.2.3.4, 1.2.3.4.5.
    if before and (before[-1] in ASCII_ALNUM or before[-1] == "."):
        return False
    if after and (after[0] in ASCII_ALNUM or (after[0] == "." and after[1:2] in ASCII_DIGITS)):
        return False
    return _VERSION_WORD_BEFORE.search(before[-20:]) is None


def ipv6(candidate: str, before: str = "", after: str = "") -> bool:
    """An IPv6 address with at least two written groups, standing on its own.

    "::" and "::1" are not about a person, and "std::vector" or "Foo::Bar" would
    otherwise parse as addresses, so a candidate glued to letters is rejected too.
    """
    if before[-1:] in ASCII_ALNUM or before[-1:] == ".":
        return False
    # "ip:fe80::1" stands on its own; "12:fe80::1" may be the end of a longer run of groups.
    if before[-1:] == ":" and (before[-2:-1] in HEX_DIGITS or before[-2:-1] == ":"):
        return False
    if after and (after[0] in ASCII_ALNUM or after[0] == ":"):
        return False
    # "::ffff:192.0.2.128": the regex stops at the dot; the IPv4 part is reported instead.
    if after[:1] == "." and after[1:2] in ASCII_DIGITS:
        return False
    if sum(1 for group in candidate.split(":") if group) < 2:
        return False
    # The C library's parser (inet_pton) is the ipaddress module's rules at a tenth of the
    # cost; it refuses a zone ("%eth0") and anything not ASCII, as the regex does.
    try:
        socket.inet_pton(socket.AF_INET6, candidate)
    except (OSError, ValueError):
        return False
    return True


# --- Email -------------------------------------------------------------------------

# Endings that are file types, not top-level domains: "logo@2x.png" is an image name.
# (Country domains that double as extensions, like .py, .rs, .md and .sh, are left out.)
FILE_EXTENSIONS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic", "avif",
    "psd", "eps", "raw", "css", "js", "mjs", "ts", "tsx", "jsx", "json", "xml", "yaml", "yml",
    "toml", "ini", "cfg", "conf", "log", "txt", "csv", "tsv", "rst", "html", "htm", "php",
    "asp", "aspx", "jsp", "rb", "java", "go", "cpp", "hpp", "swift", "kt", "sql", "bat", "exe",
    "dll", "bin", "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "rtf", "gz", "tgz",
    "bz2", "xz", "tar", "rar", "7z", "jar", "war", "mp3", "mp4", "wav", "ogg", "flac", "webm",
    "mkv", "avi", "wmv", "m4a", "woff", "woff2", "ttf", "otf", "eot", "map", "lock",
})  # fmt: skip

# Labels of letters, digits and inner hyphens, then a top-level domain of letters. Each
# label ends at its dot, so this cannot backtrack badly even in Python's re.
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})\Z")


def email_domain(candidate: str, before: str = "", after: str = "") -> bool:
    """An email address whose parts are well formed and whose domain is plausible."""
    local, at, domain = candidate.rpartition("@")
    if not at or not 1 <= len(local) <= 64 or len(domain) > 253:
        return False
    if local[0] == "." or local[-1] == "." or ".." in local:
        return False
    well_formed = _DOMAIN.match(domain)
    return well_formed is not None and well_formed.group(1).lower() not in FILE_EXTENSIONS


# --- Phone -------------------------------------------------------------------------

# The regions a phone number written without its country code (+CC or 00CC) is tried in,
# in order, when ATLAS_PHONE_REGIONS is not set. ISO 3166 codes as libphonenumber has them.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "NL", "ES", "IT")
_DEFAULT_REGIONS_TEXT = ",".join(DEFAULT_PHONE_REGIONS)
# How much of the text before a phone candidate its rules read (all the scanner passes:
# "Steueridentifikationsnummer " is 28 characters).
CONTEXT_BEFORE = 30

# What the shipped phone regex takes in besides digits.
_PHONE_PUNCTUATION = b" ./-()+"
# "... 0743x9150", "... 0134 ext. 12": the regex takes in an extension; only the number
# before it is validated.
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?[0-9]+\Z", re.IGNORECASE)
# Shapes that are numbers of another kind: a decimal ("164.457479", "0.580559", a
# coordinate), a dotted quad ("174.239.19.657", a malformed IP address), a year and a
# serial ("2026/914222", an invoice). 030/1234567 and 0441.68312 start with the area
# code's 0, +CC numbers with "+".
_NOT_A_NATIONAL_PHONE = re.compile(
    r"(?:[1-9][0-9]*|0)\.[0-9]+\Z|[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z|[1-9][0-9]*/"
    r"|(?:19|20)[0-9]{2}-(?:19|20)[0-9]{2}\Z"  # a range of years ("2013-2029")
)
# Ten bare digits starting with 1 are a Unix time (2001-2033), not an Italian personal
# number (178...) or a US number (no area code starts with 1); thirteen, one in
# milliseconds.
_UNIX_TIME = re.compile(r"1[0-9]{9}(?:[0-9]{3})?\Z")
# A grouping that is a dotted version or section number, not a phone number.
_DOTTED_GROUPS = re.compile(r"[0-9]+(?:\.[0-9]+){2,}\Z")
# Words that name the bare digits after them as a reference of some kind: "PO 93528211",
# "Bestellnr. 0441683", "invoice no. 20240115", "Kundennummer 065240832", "ref. 712072275".
# A number written as a phone number is ("06 34 26 97 32" after "Ref:") is not refused.
REFERENCE_WORDS = frozenset({
    "po", "order", "invoice", "inv", "ticket", "tracking", "sku", "isbn", "serial", "ref",
    "reference", "batch", "lot", "customer", "bestellnr", "bestellnummer", "bestellung",
    "rechnung", "rechnungsnr", "rechnungsnummer", "auftrag", "auftragsnr", "kundennummer",
    "kundennr", "sendungsnummer", "ordernummer", "commande", "facture", "pedido", "factura",
    "ordine", "fattura", "bestelling", "factuur",
})  # fmt: skip
# Names of other identifiers: the digits after them, however grouped, are that identifier
# unless they carry a country code: "BSN: 913208570" (the shape of a Madrid number too),
# "Steuer-ID: 78 692 358 182", "VAT FR3R 397800376" (a French VAT number's key between).
IDENTIFIER_WORDS = frozenset({
    "bsn", "burgerservicenummer", "sofinummer", "steuer-id", "steuerid", "steuer-idnr",
    "steueridnr", "steuernummer", "idnr", "steueridentifikationsnummer", "tin", "ssn",
    "security", "nino", "nir", "insee", "dni", "nie", "nif", "vat", "tva", "btw", "iva",
    "mwst", "ust-idnr", "ustidnr", "iban", "account", "acct", "konto",
})  # fmt: skip
# "... no.", "... Nr.", "...-nummer", "... #" between such a word and the digits.
_NUMBER_WORDS = ("nummer", "number", "num", "nr", "no", "n°", "nº", "#")
_LABEL_PUNCTUATION = " \t.:#=-"
_FRENCH_VAT_KEY = re.compile(r"[a-z]{2}[0-9a-z]{2}\Z")


def named_before(before: str, words: frozenset[str]) -> bool:
    """The text just before a candidate ends with one of `words` as a whole word, perhaps
    followed by "no.", "Nr", "-nummer", "#", ":" and spaces (or, for an identifier, by a
    French VAT number's key: "VAT FR3R 397800376").

    The last words are looked up in a set, not searched for with a regex: a phone check
    asks this for every candidate, and a search tries each position of the text before it.
    """
    head, _, word = before[-CONTEXT_BEFORE:].lower().rstrip(_LABEL_PUNCTUATION).rpartition(" ")
    for _ in range(3):  # the word, or the one before "no." or a VAT key
        word = word.lstrip("([{'\"").rstrip(_LABEL_PUNCTUATION)
        if word in words:
            return True
        if word.endswith(_NUMBER_WORDS):  # "bsn-nummer", "rechnungs-nr", or "no." alone
            for number_word in _NUMBER_WORDS:
                if word.endswith(number_word) and word[: -len(number_word)].rstrip("-.") in words:
                    return True
        skippable = word in _NUMBER_WORDS or (
            len(word) == 4 and words is IDENTIFIER_WORDS and _FRENCH_VAT_KEY.match(word) is not None
        )
        if not skippable or not head:
            return False
        head, _, word = head.rstrip(_LABEL_PUNCTUATION).rpartition(" ")
    return False


# ATLAS_PHONE_REGIONS as read once; forget_phone_regions() makes the next call read it again.
_regions: list[tuple[str, ...]] = []
# The country a field or its dataset declares, while its values are scanned.
_declared_regions: ContextVar[tuple[str, ...] | None] = ContextVar(
    "atlas_declared_phone_regions", default=None
)


@contextmanager
def declared_phone_regions(regions: Sequence[str] | None) -> Iterator[None]:
    """Within the block, a number without its country code is read as one of `regions`'
    (the country a field or its dataset declares), not ATLAS_PHONE_REGIONS'. None or
    empty: ATLAS_PHONE_REGIONS as usual. A number with its country code says its own."""
    if not regions:
        yield
        return
    token = _declared_regions.set(tuple(regions))
    try:
        yield
    finally:
        _declared_regions.reset(token)


def check_region(code: str) -> str:
    """`code` as a region libphonenumber knows (upper case), or ValueError saying why not."""
    region = code.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{code!r} is not a country code libphonenumber knows (ISO 3166 alpha-2, such as "
            "GB, not UK)."
        )
    return region


def phone_regions() -> tuple[str, ...]:
    """The declared country while a field or dataset declaring one is scanned (see
    declared_phone_regions); otherwise ATLAS_PHONE_REGIONS, from Django's settings when
    configured, else the environment.

    ATLAS_PHONE_REGIONS is read once (reading Django's settings cost as much as the rest
    of a phone check): governance.compliance.signals forgets it when the setting changes
    (a test's override_settings), and a process reads its settings at start anyway.
    """
    declared = _declared_regions.get()
    if declared is not None:
        return declared
    if _regions:
        return _regions[0]
    from django.conf import settings  # noqa: PLC0415 (imported late: this module runs without Django)

    value = getattr(settings, "ATLAS_PHONE_REGIONS", None) if settings.configured else None
    if value is None:
        value = os.environ.get("ATLAS_PHONE_REGIONS") or _DEFAULT_REGIONS_TEXT
    regions = _parse_regions(value if isinstance(value, str) else tuple(value))
    _regions[:] = [regions]
    return regions


def forget_phone_regions() -> None:
    _regions.clear()


@functools.lru_cache(maxsize=32)
def _parse_regions(value: str | tuple[str, ...]) -> tuple[str, ...]:
    codes = value.split(",") if isinstance(value, str) else value
    regions = tuple(code.strip().upper() for code in codes if code.strip())
    unknown = [code for code in regions if code not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(
            f"ATLAS_PHONE_REGIONS holds {', '.join(unknown)}: not regions libphonenumber "
            "knows (ISO 3166 codes such as GB, not UK)."
        )
    return regions


class _RegionRule:
    """What a number written the national way (no country code) looks like in a region."""

    def __init__(self, region: str) -> None:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        assert metadata is not None and metadata.general_desc is not None
        self.region = region
        self.country_code = str(metadata.country_code)
        # The trunk prefix ("0" in most of Europe, "1" in North America), if any.
        self.trunk = metadata.national_prefix or ""
        # Whether the trunk prefix is always written: 030 123456 in Germany, never
        # 30 123456; (201) 555-0123 in the US, where a leading 1 is optional.
        example = phonenumbers.example_number(region)
        national = (
            _digits(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL))
            if example is not None
            else ""
        )
        self.trunk_required = bool(self.trunk) and national.startswith(self.trunk)
        self.calling_code = metadata.country_code
        # Regions whose national numbers libphonenumber rewrites while parsing (Brazil's
        # carrier codes, Japan's ...) are parsed; the others are read here (below).
        self.simple = metadata.national_prefix_transform_rule is None
        self.general = _general_pattern(metadata)
        self.services = tuple(
            re.compile(desc.national_number_pattern).fullmatch
            for desc in (metadata.premium_rate, metadata.shared_cost, metadata.uan)
            if desc is not None and desc.national_number_pattern
        )

    def may_hold(self, digits: str) -> bool:
        """A cheap look before parsing: the region's general shape of a national number,
        after the trunk prefix, without it where it may be left out, or after the
        country code."""
        general = self.general
        if self.trunk and digits.startswith(self.trunk) and general(digits[len(self.trunk) :]):
            return True
        if not self.trunk_required and general(digits):
            return True
        return (
            len(digits) >= 10
            and digits.startswith(self.country_code)
            and bool(general(digits[len(self.country_code) :]))
        )

    def national_forms(self, digits: str) -> Iterator[tuple[str, bool]]:
        """(national significant number, any kind of number allowed) for each way the
        digits may be written here: after the trunk prefix; without one where it may be
        left out, or after the country code without its "+": no service numbers (see
        written_as_here)."""
        general = self.general
        if self.trunk and digits.startswith(self.trunk):
            national = digits[len(self.trunk) :]
            if general(national):
                yield national, True
        if not self.trunk_required and general(digits):
            yield digits, False
        # E.164 stored without its "+" (33612345678): ten digits at least, not a row
        # count of eight ("49 857 589").
        if len(digits) >= 10 and digits.startswith(self.country_code):
            national = digits[len(self.country_code) :]
            if general(national):
                yield national, False

    def is_service(self, national: str) -> bool:
        return any(service(national) for service in self.services)

    def written_as_here(self, digits: str, number: phonenumbers.PhoneNumber) -> bool:
        """The digits are the national number as the region writes it.

        After the trunk prefix (030 123456, 1-900-555-0134): any valid number. Without
        one where it may be left out (415 555 0134 in the US; 06 1234 5678 in Italy,
        which has none), or after the country code without its "+" (39 050 606952, as
        libphonenumber reads it): any but a service number (premium rate, shared cost,
        UAN), as bare digits are as often a version number (Italy's 166 premium rate
        range holds "166.241.251").
        """
        national = phonenumbers.national_significant_number(number)
        if not national or not digits.endswith(national):
            return False
        written_prefix = digits[: len(digits) - len(national)]
        if self.trunk and written_prefix == self.trunk:
            return True
        if (written_prefix == "" and not self.trunk_required) or (
            written_prefix == self.country_code and len(digits) >= 10
        ):
            return not self.is_service(national)
        return False


def _general_pattern(metadata: phonenumbers.PhoneMetadata) -> Callable[[str], object]:
    """fullmatch of the region's general national number pattern (every kind of number)."""
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return bool
    return re.compile(general.national_number_pattern).fullmatch


@functools.lru_cache(maxsize=64)
def _region_rule(region: str) -> _RegionRule:
    return _RegionRule(region)


@functools.lru_cache(maxsize=512)
def _country_shapes(country_code: int) -> tuple[tuple[str, Callable[[str], object]], ...]:
    """(trunk prefix, general pattern) of each region sharing a country calling code."""
    shapes = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, region
        )
        if metadata is not None:
            shapes.append((metadata.national_prefix or "", _general_pattern(metadata)))
    return tuple(shapes)


@functools.lru_cache(maxsize=512)
def _simple_country(country_code: int) -> bool:
    """No region of the code has libphonenumber rewrite its national numbers."""
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, region
        )
        if metadata is None or metadata.national_prefix_transform_rule is not None:
            return False
    return True


def _international_forms(digits: str) -> tuple[int, list[str]]:
    """The country code of +CC... digits and the national numbers they may hold: of one
    of its regions' general shape, perhaps after the trunk prefix ("+33 0612...").
    No national number: not a phone number (a cheap look before libphonenumber's)."""
    if len(digits) < 4:
        return 0, []
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            rest = digits[length:]
            forms = []
            for trunk, general in _country_shapes(country_code):
                if general(rest) and rest not in forms:
                    forms.append(rest)
                if trunk and rest.startswith(trunk):
                    national = rest[len(trunk) :]
                    if general(national) and national not in forms:
                        forms.append(national)
            return country_code, forms
    return 0, []


def _phone_number(country_code: int, national: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber phonenumbers.parse makes of a national significant number."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    if len(national) > 1 and national[0] == "0":  # Italy's leading zero, as parse keeps it
        number.italian_leading_zero = True
        zeros = len(national) - len(national.lstrip("0"))
        zeros = min(zeros, len(national) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


# The kinds of number libphonenumber's is_valid_number_for_region accepts, in its order.
_NUMBER_KINDS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _desc_matcher(desc: phonenumbers.PhoneNumberDesc | None) -> Callable[[str], bool] | None:
    """libphonenumber's _is_number_matching_desc for one description, compiled once."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length or ())
    fullmatch = re.compile(desc.national_number_pattern).fullmatch

    def matches(national: str) -> bool:
        if lengths and len(national) not in lengths:
            return False
        return fullmatch(national) is not None

    return matches


@functools.lru_cache(maxsize=512)
def _valid_in(country_code: int, region: str) -> Callable[[str], bool]:
    """is_valid_number_for_region for a national significant number of `region`.

    The same test libphonenumber makes (the general description, then any kind of
    number, each with its possible lengths), on the region's metadata, without building
    and formatting a PhoneNumber and looking its metadata up again for every candidate:
    two thirds of a phone check's cost. The kinds a number's length allows are tried as
    one alternation, compiled once per length. governance/compliance/tests/
    test_pii_validators.py holds it to libphonenumber's own answer.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    general = _desc_matcher(metadata.general_desc) if metadata is not None else None
    if metadata is None or general is None:
        return lambda national: False
    kinds = [
        (frozenset(desc.possible_length or ()), desc.national_number_pattern)
        for kind in _NUMBER_KINDS
        if (desc := getattr(metadata, kind)) is not None and desc.national_number_pattern
    ]
    by_length: dict[int, Callable[[str], object] | None] = {}

    def any_kind_of_length(length: int) -> Callable[[str], object] | None:
        patterns = [pattern for lengths, pattern in kinds if not lengths or length in lengths]
        if not patterns:
            return None
        return re.compile("|".join(f"(?:{pattern})" for pattern in patterns)).fullmatch

    def valid(national: str) -> bool:
        if not general(national):
            return False
        length = len(national)
        if length not in by_length:
            by_length[length] = any_kind_of_length(length)
        matcher = by_length[length]
        return matcher is not None and matcher(national) is not None

    return valid


def _is_valid_national(country_code: int, national: str, region: str | None) -> bool:
    """phonenumbers.is_valid_number of +country_code national, asking the likely region
    first (the region it was read in, or the code's main region): is_valid_number first
    looks for the number's region among all that share its code (25 for +1)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    likely = region or (regions[0] if regions else None)
    if likely is not None and _valid_in(country_code, likely)(national):
        return True
    if len(regions) == 1 and likely == regions[0]:
        return False  # is_valid_number would ask the same region
    # is_valid_number: the number's region is the first of the code's regions whose
    # leading digits it starts with, or (for a region without any) where it is valid.
    for other, leading_digits in _regions_of_code(country_code):
        if leading_digits is not None:
            if leading_digits(national):
                return _valid_in(country_code, other)(national)
        elif _valid_in(country_code, other)(national):
            return True
    return False


@functools.lru_cache(maxsize=512)
def _regions_of_code(country_code: int) -> tuple[tuple[str, Callable[[str], object] | None], ...]:
    """(region, match of its leading digits or None) for each region sharing the code."""
    regions = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, region
        )
        if metadata is None:
            continue
        leading = metadata.leading_digits
        regions.append((region, re.compile(leading).match if leading is not None else None))
    return tuple(regions)


def _is_valid(number: phonenumbers.PhoneNumber, region: str | None) -> bool:
    """phonenumbers.is_valid_number of a parsed number, the likely region first."""
    national = phonenumbers.national_significant_number(number)
    return _is_valid_national(number.country_code, national, region)


def _parses_as_valid(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The number if libphonenumber parses it and calls it valid (is_valid_number)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if _is_valid(number, region) else None


@functools.lru_cache(maxsize=4096)
def is_valid_phone_number(number: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> bool:
    """libphonenumber's verdict on a written number (without extension).

    With a country code (+CC, or 00CC as most of the world dials abroad) the number
    says its own region. Without one it must be valid in one of `regions` (tried in
    order) as written there: a German or French number keeps its trunk 0, so eight
    digits of an order number are not taken for a German number without one.
    """
    digits = _digits(number)
    stripped = number.lstrip("( ")
    if stripped.startswith(("+", "00")):
        international = "+" + stripped[2:] if stripped[0] == "0" else number
        # "+33 (0)3 88 ...": the bracketed trunk prefix is not part of the number.
        country_code, forms = _international_forms(_digits(international.replace("(0)", "")))
        if not forms:
            return False
        if not _simple_country(country_code):
            return _parses_as_valid(international, None) is not None
        # What parse would make of it, without parsing the text again (a third of the cost).
        return any(_is_valid_national(country_code, form, None) for form in forms)
    for region in regions:
        rule = _region_rule(region)
        if rule.simple:
            for national, any_kind in rule.national_forms(digits):
                if _is_valid_national(rule.calling_code, national, region) and (
                    any_kind or not rule.is_service(national)
                ):
                    return True
        elif rule.may_hold(digits):
            parsed = _parses_as_valid(number, region)
            if parsed is not None and rule.written_as_here(digits, parsed):
                return True
    return False


def _glued_to_a_longer_token(before: str, after: str) -> bool:
    """Digits, letters or code syntax right against the candidate: it is part of something else.

    "…T05:22:27.560310" (the seconds of a timestamp), "v2.14.3", "ORD-20240115",
    "85142859-db5e-", "10.0.0.1" and "12:30" all show themselves by the characters
    just around the candidate.
    """
    if before:
        last = before[-1]
        if last in ASCII_ALNUM or last in "-./_#@":
            return True
        # "05:22:27.56": a time; but "Tel:0612345678" is a label.
        if last == ":" and before[-2:-1] in ASCII_DIGITS:
            return True
    if _continues_a_longer_code(before):
        return True
    if after:
        first, second = after[0], after[1:2]
        if first in ASCII_ALNUM or first in "_@":
            return True
        # More digits after a separator, or a hyphenated code going on ("85142859-db5e-"),
        # or a time or version going on ("27:30", "1.2.3.4").
        if (first == " " and second in ASCII_DIGITS) or (first in ".-/:" and second in ASCII_ALNUM):
            return True
    return False


def _named_as_something_else(number: str, before: str) -> bool:
    """A label before a number without its country code names it as another identifier,
    or (bare digits) as a reference: "BSN: 913208570", "PO 93528211"."""
    if number.lstrip("( ").startswith(("+", "00")):
        return False
    return named_before(before, IDENTIFIER_WORDS) or (
        number.isdigit() and named_before(before, REFERENCE_WORDS)
    )


def phone(candidate: str, before: str = "", after: str = "") -> bool:
    """A phone number libphonenumber calls valid, standing on its own.

    The region comes from the number itself (+CC or 00CC), else from the country its field
    or dataset declares, else from ATLAS_PHONE_REGIONS (phone_regions,
    is_valid_phone_number). Before that, cheap checks: 7 to 15 digits (E.164), not
    one digit repeated, not glued to a longer code, a timestamp or a version number
    (the phone regex has no boundaries, so it also finds digits inside those).
    """
    if _glued_to_a_longer_token(before, after):
        return False
    # (Every extension has an x: "x123", "ext. 12". Most candidates have none, and are
    # spared the regex.)
    number = _EXTENSION.sub("", candidate) if "x" in candidate or "X" in candidate else candidate
    # As bytes: bytes.translate deletes characters at a tenth of str.translate's cost.
    digits = number.encode().translate(None, _PHONE_PUNCTUATION)
    if not digits.isdigit():  # a steward's regex took in more
        digits = _digits(number).encode()
    if not 7 <= len(digits) <= 15 or len(set(digits)) == 1:
        return False
    # "version 219.141.196": dotted groups after a version word.
    if _DOTTED_GROUPS.match(number) and _VERSION_WORD_BEFORE.search(before[-20:]):
        return False
    if before and _named_as_something_else(number, before):
        return False
    if _NOT_A_NATIONAL_PHONE.match(number) or _UNIX_TIME.match(number):
        return False
    return is_valid_phone_number(number, phone_regions())


# --- Date of birth -----------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})([-/.])(\d{2})\2(\d{2})\Z")
_DAY_FIRST_DATE = re.compile(r"(\d{2})([-/.])(\d{2})\2(\d{4})\Z")


def calendar_date(candidate: str, before: str = "", after: str = "") -> bool:
    """A real calendar date (YYYY-MM-DD or DD-MM-YYYY), in the past, from 1900 on.

    "Today" is the UTC date (Atlas's default TIME_ZONE), not the host's local one: this
    module runs without Django, so not through django.utils.timezone.localdate().
    """
    if iso := _ISO_DATE.match(candidate):
        year, month, day = iso.group(1), iso.group(3), iso.group(4)
    elif day_first := _DAY_FIRST_DATE.match(candidate):
        day, month, year = day_first.group(1), day_first.group(3), day_first.group(4)
    else:
        return False
    try:
        value = date(int(year), int(month), int(day))
    except ValueError:
        return False
    return date(1900, 1, 1) <= value < datetime.now(UTC).date()


# Keyed by governance.compliance.models.PiiValidator values. Plain strings, so this
# module needs no Django; a test checks both lists stay the same.
VALIDATORS: dict[str, Validator] = {
    "none": no_validation,
    "luhn": luhn,
    "iban_mod97": iban_mod97,
    "us_ssn": us_ssn,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "email_domain": email_domain,
    "phone": phone,
    "date": calendar_date,
    **NATIONAL_ID_VALIDATORS,
}


def get_validator(name: str) -> Validator:
    try:
        return VALIDATORS[name]
    except KeyError:
        raise ValueError(f"Unknown PII validator {name!r}.") from None
