"""A seeded, labelled set of values for measuring PII precision and recall.

Each value says which PII types it truly holds. About half hold PII of one of the
eight shipped types, bare or inside a sentence, with and without context words. The
rest are the look-alikes that make a detector lie: card numbers failing Luhn, IBANs
with bad check digits or lengths, SSNs with invalid areas, groups or serials, version
strings and MAC addresses that look like IPs, image names that look like emails,
dates without a birth context, order numbers, ISBNs, UUIDs, timestamps, free text.

Only the standard library's random, with a seed, so every run yields the same set.
Test and benchmark support (the PII tests, bench/pii_accuracy.py, bench/promote.py), not
production code: it lives with the test helpers, which the image leaves out.
"""

import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from governance.compliance.pii.validators import IBAN_LENGTHS, iban_check_value, luhn_checksum_ok

DEFAULT_SEED = 13616
DEFAULT_SIZE = 12_000

PII_TYPES = (
    "email",
    "phone",
    "us_ssn",
    "payment_card",
    "iban",
    "ipv4",
    "ipv6",
    "date_of_birth",
)


@dataclass(frozen=True)
class LabelledValue:
    text: str
    pii_types: frozenset[str]
    kind: str  # what generated it, to find the culprit behind an error
    field_name: str | None = None


FIRST_NAMES = (
    "jane", "john", "maria", "wei", "aisha", "lukas", "emma", "noah", "olga", "pedro", "yuki",
    "amara", "liam", "sofia", "omar", "chen", "ines", "raj", "fatima", "tom", "anna",
)  # fmt: skip
LAST_NAMES = (
    "doe", "smith", "garcia", "wang", "khan", "muller", "rossi", "silva", "novak", "tanaka",
    "okafor", "brown", "nguyen", "kowalski", "jensen", "dubois", "martin", "patel", "lee",
)  # fmt: skip
DOMAINS = (
    "example.com", "example.org", "mail.example.net", "gmail.com", "outlook.com", "yahoo.co.uk",
    "uni-berlin.de", "company.io", "post.example.fr", "acme-corp.com", "shop.example.co.jp",
)  # fmt: skip
WORDS = (
    "the", "order", "was", "shipped", "late", "and", "the", "customer", "asked", "for", "a",
    "refund", "please", "check", "stock", "levels", "before", "friday", "delivery", "address",
    "updated", "invoice", "attached", "thanks", "for", "your", "patience", "we", "will", "call",
    "back", "tomorrow", "package", "left", "at", "reception", "warehouse", "team", "confirmed",
    "quantity", "price", "discount", "applied",
)  # fmt: skip
NEUTRAL_FIELDS = ("value", "notes", "comment", "col_7", "data", "details", "misc", None)


def _date_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


# --- Values ----------------------------------------------------------------------


def make_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}.{last}{rng.randrange(100)}",
            f"{first}_{last}",
            f"{first}+news",
            f"{first.capitalize()}{last.capitalize()}",
            f"{first}{rng.randrange(1950, 2010)}",
        ]
    )
    return f"{local}@{rng.choice(DOMAINS)}"


# (prefix, length) of real issuers; the Luhn check digit is appended.
CARD_SHAPES = (
    ("4", 16),
    ("4", 13),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("3530", 16),
    ("36", 14),
    ("62", 16),
)


def _luhn_complete(partial: str) -> str:
    for check_digit in "0123456789":
        if luhn_checksum_ok(partial + check_digit):
            return partial + check_digit
    raise AssertionError("a Luhn check digit always exists")


def _format_card(rng: random.Random, digits: str) -> str:
    separator = rng.choice(["", " ", "-", " "])
    if not separator:
        return digits
    if len(digits) == 15:  # American Express prints 4-6-5
        return separator.join([digits[:4], digits[4:10], digits[10:]])
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def make_card(rng: random.Random, *, valid: bool = True) -> str:
    prefix, length = rng.choice(CARD_SHAPES)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = _luhn_complete(body)
    if not valid:  # any other check digit fails Luhn
        wrong = (int(digits[-1]) + rng.randrange(1, 10)) % 10
        digits = digits[:-1] + str(wrong)
    return _format_card(rng, digits)


# BBAN shape per country: "n" digits, "a" capital letters, "c" either.
IBAN_SHAPES = {
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20,
    "IT": "a" + "n" * 10 + "c" * 12,
    "BE": "n" * 12,
    "CH": "n" * 5 + "c" * 12,
    "AT": "n" * 16,
    "PL": "n" * 24,
    "NO": "n" * 11,
    "IE": "aaaa" + "n" * 14,
    "PT": "n" * 21,
    "SE": "n" * 20,
    "MT": "aaaa" + "n" * 5 + "c" * 18,
    "SA": "nn" + "c" * 18,
}


def _iban_with_check_digits(country: str, bban: str) -> str:
    check = 98 - iban_check_value(f"{country}00{bban}")
    return f"{country}{check:02d}{bban}"


def _random_bban(rng: random.Random, shape: str) -> str:
    alphabet = {"n": string.digits, "a": string.ascii_uppercase}
    return "".join(
        rng.choice(alphabet.get(kind, string.digits + string.ascii_uppercase)) for kind in shape
    )


def _format_iban(rng: random.Random, iban: str) -> str:
    if rng.random() < 0.5:
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def make_iban(rng: random.Random, *, defect: str | None = None) -> str:
    """A valid IBAN, or one with a defect: "check_digits", "length" or "country"."""
    country = rng.choice(sorted(IBAN_SHAPES))
    bban = _random_bban(rng, IBAN_SHAPES[country])
    if defect == "length":  # check digits recomputed: only the length table can tell
        bban = bban[:-1] if rng.random() < 0.5 else bban + rng.choice(string.digits)
    if defect == "country":
        country = rng.choice(["US", "XX", "CA", "AU", "ZZ"])
    iban = _iban_with_check_digits(country, bban)
    if defect == "check_digits":
        wrong = (int(iban[2:4]) + rng.randrange(1, 90) - 2) % 97 + 2
        iban = f"{iban[:2]}{wrong:02d}{iban[4:]}"
    assert country in IBAN_LENGTHS or defect == "country"
    return _format_iban(rng, iban)


def make_ssn(rng: random.Random, *, defect: str | None = None) -> str:
    """A valid SSN, or one with an invalid "area", "group" or "serial"."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randrange(1, 100), rng.randrange(1, 10_000)
    if defect == "area":
        area = rng.choice([0, 666, rng.randrange(900, 1000)])
    elif defect == "group":
        group = 0
    elif defect == "serial":
        serial = 0
    return f"{area:03d}-{group:02d}-{serial:04d}"


def make_ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, rng.randrange(1, 224)])
    return ".".join(str(octet) for octet in [first, *(rng.randrange(256) for _ in range(3))])


def make_ipv6(rng: random.Random) -> str:
    groups = [rng.randrange(0x10000) for _ in range(8)]
    if rng.random() < 0.6:  # real addresses usually have a run of zero groups
        run_start = rng.randrange(1, 6)
        for index in range(run_start, run_start + rng.randrange(2, 4)):
            groups[index] = 0
    if rng.random() < 0.3:
        groups[:4] = [0xFE80, 0, 0, 0]
    address = ipaddress.IPv6Address(int("".join(f"{group:04x}" for group in groups), 16))
    text = rng.choice([address.compressed, address.compressed, address.exploded])
    return text.upper() if rng.random() < 0.2 else text


PHONE_FORMATS = (
    "+1 {a} {b} {c}",
    "({a}) {b}-{c}",
    "{a}-{b}-{c}",
    "{a}.{b}.{c}",
    "+1-{a}-{b}-{c}",
    "{a}{b}{c}",
    "+44 20 {b4} {c}",
    "020 {b4} {c}",
    "+49 30 {b4} {c}",
    "+33 {a} {b} {c}",
)


def make_phone(rng: random.Random) -> str:
    template = rng.choice(PHONE_FORMATS)
    return template.format(
        a=rng.randrange(201, 990),
        b=rng.randrange(200, 1000),
        b4=rng.randrange(2000, 10_000),
        c=f"{rng.randrange(10_000):04d}",
    )


DATE_FORMATS = ("{y:04d}-{m:02d}-{d:02d}", "{d:02d}/{m:02d}/{y:04d}", "{d:02d}.{m:02d}.{y:04d}")


def make_date(rng: random.Random, first: date, last: date) -> str:
    day = _date_between(rng, first, last)
    return rng.choice(DATE_FORMATS).format(y=day.year, m=day.month, d=day.day)


def make_birth_date(rng: random.Random) -> str:
    return make_date(rng, date(1930, 1, 1), date(2006, 12, 31))


# --- Presentations ---------------------------------------------------------------

# Per type: a field name that names it, sentences with a context word, sentences without.
PRESENTATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "email": (
        ("email", "contact_email", "customerEmail"),
        ("email: {v}", "Please send the invoice by e-mail to {v} today", "contact {v}"),
        ("ticket raised by {v} yesterday", "Jane Doe <{v}>", "mailto:{v}", "Grüße — {v}"),
    ),
    "phone": (
        ("phone", "mobile", "tel", "contact_phone"),
        ("phone: {v}", "Call me on {v} after six", "mobile {v}"),
        ("reach {v} please", "{v} (evenings)", "dispatcher said {v}", "Grüße, {v}"),
    ),
    "us_ssn": (
        ("ssn", "social_security_number"),
        ("SSN {v}", "social security number {v} on file", "ssn: {v}"),
        ("id {v} verified", "{v} (verified)", "applicant {v}", "SSN#{v}"),
    ),
    "payment_card": (
        ("card_number", "credit_card", "pan"),
        ("card {v} exp 12/27", "paid by Visa {v}", "credit card: {v}"),
        ("number {v} charged", "{v}", "ref {v} captured", "pan={v};exp=1227"),
    ),
    "iban": (
        ("iban", "bank_account"),
        ("IBAN {v}", "bank account {v} for the refund", "IBAN {v} BIC COBADEFFXXX"),
        ("pay to {v} by friday", "{v}", "beneficiary {v}", "{v} EUR"),
    ),
    "ipv4": (
        ("client_ip", "ip_address", "remote_addr"),
        ("client {v} connected", "ip={v}", "host {v} unreachable"),
        ("http://{v}:8080/health", "from {v}, port 22", "[{v}] timeout"),
    ),
    "ipv6": (
        ("client_ip", "ipv6", "remote_addr"),
        ("client {v} connected", "ipv6 {v}", "host {v} down", "ip:{v}"),
        ("[{v}]:443 refused", "peer {v} timed out", "via {v}", "neighbour {v}%eth0"),
    ),
    "date_of_birth": (
        ("date_of_birth", "dob", "birth_date", "birthDate"),
        ("born {v}", "DOB: {v}", "date of birth {v}", "Birthday: {v}"),
        (),  # a date without any birth context is not labelled a birth date
    ),
}

VALUE_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "email": make_email,
    "phone": make_phone,
    "us_ssn": make_ssn,
    "payment_card": make_card,
    "iban": make_iban,
    "ipv4": make_ipv4,
    "ipv6": make_ipv6,
    "date_of_birth": make_birth_date,
}


def positive(rng: random.Random, pii_type: str) -> LabelledValue:
    value = VALUE_MAKERS[pii_type](rng)
    named_fields, with_context, without_context = PRESENTATIONS[pii_type]
    roll = rng.random()
    if roll < 0.4 or (pii_type == "date_of_birth" and roll < 0.6):
        field_name = rng.choice(named_fields)
        return LabelledValue(value, frozenset({pii_type}), f"{pii_type}:named_field", field_name)
    if roll < 0.7 or not without_context:
        text = rng.choice(with_context).format(v=value)
        return LabelledValue(
            text, frozenset({pii_type}), f"{pii_type}:context", rng.choice(NEUTRAL_FIELDS)
        )
    text = rng.choice(without_context).format(v=value)
    return LabelledValue(
        text, frozenset({pii_type}), f"{pii_type}:bare", rng.choice(NEUTRAL_FIELDS)
    )


def two_kinds(rng: random.Random) -> LabelledValue:
    email, phone = make_email(rng), make_phone(rng)
    text = f"contact {email} or call {phone}"
    return LabelledValue(text, frozenset({"email", "phone"}), "email+phone", "notes")


# --- Near misses and ordinary values ---------------------------------------------


def _hex(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(count))


def _version_quad(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(0, 20)) for _ in range(4))


NEAR_MISSES: dict[str, Callable[[random.Random], str]] = {
    "card_luhn_fails": lambda rng: (
        rng.choice(["", "card ", "credit card "]) + make_card(rng, valid=False)
    ),
    "iban_bad_check_digits": lambda rng: (
        rng.choice(["", "IBAN "]) + make_iban(rng, defect="check_digits")
    ),
    "iban_bad_length": lambda rng: rng.choice(["", "IBAN "]) + make_iban(rng, defect="length"),
    "iban_unknown_country": lambda rng: make_iban(rng, defect="country"),
    "ssn_invalid_area": lambda rng: rng.choice(["", "SSN "]) + make_ssn(rng, defect="area"),
    "ssn_invalid_group": lambda rng: rng.choice(["", "SSN "]) + make_ssn(rng, defect="group"),
    "ssn_invalid_serial": lambda rng: rng.choice(["", "SSN "]) + make_ssn(rng, defect="serial"),
    "ipv4_v_prefixed_version": lambda rng: f"v{_version_quad(rng)}",
    "ipv4_five_parts": lambda rng: f"{_version_quad(rng)}.{rng.randrange(10)}",
    "ipv4_named_version": lambda rng: (
        rng.choice(["version", "firmware", "build", "release", "Version:"])
        + f" {rng.randrange(1, 20)}.{rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(100)}"
    ),
    "ipv4_octet_over_255": lambda rng: (
        ".".join(str(rng.randrange(256)) for _ in range(3)) + f".{rng.randrange(256, 1000)}"
    ),
    "ipv4_leading_zeros": lambda rng: ".".join(f"{rng.randrange(10):02d}" for _ in range(4)),
    "ipv4_three_parts": lambda rng: (
        f"{rng.randrange(1, 10)}.{rng.randrange(20)}.{rng.randrange(100)}"
    ),
    "ipv6_mac_address": lambda rng: ":".join(_hex(rng, 2) for _ in range(6)),
    "ipv6_double_compression": lambda rng: f"{_hex(rng, 4)}::{_hex(rng, 2)}::{_hex(rng, 3)}",
    "ipv6_hex_words": lambda rng: rng.choice(["dead:beef:cafe", "cafe:babe:f00d", "ab:cd:ef"]),
    "ipv4_version_in_sentence": lambda rng: f"upgraded to version {_version_quad(rng)} today",
    "ipv6_time_of_day": lambda rng: (
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    ),
    "ipv6_cpp_scope": lambda rng: rng.choice(
        ["std::vector<int>", "Foo::Bar::baz()", "Data::Dumper", "crate::config::load"]
    ),
    "ipv6_uuid": lambda rng: (
        f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    ),
    "email_image_name": lambda rng: (
        f"{rng.choice(['logo', 'icon', 'avatar', 'hero'])}@"
        f"{rng.randrange(2, 4)}x.{rng.choice(['png', 'jpg', 'webp', 'svg', 'gif'])}"
    ),
    "email_bad_domain": lambda rng: (
        f"{rng.choice(FIRST_NAMES)}@"
        + rng.choice(["example..com", "-example.com", "example-.org", "localhost"])
    ),
    "email_handle": lambda rng: f"@{rng.choice(FIRST_NAMES)}_{rng.choice(LAST_NAMES)}",
    "date_without_birth_context": lambda rng: (
        rng.choice(["", "ordered ", "shipped on "])
        + make_date(rng, date(2000, 1, 1), date(2024, 12, 31))
    ),
    "date_invalid_calendar": lambda rng: (
        rng.choice(["born ", "DOB: "])
        + rng.choice(["1987-02-30", "31/04/1990", "1975-13-01", "30.02.1969", "2001-06-31"])
    ),
    "date_in_future": lambda rng: (
        rng.choice(["born ", "DOB: "]) + make_date(rng, date(2090, 1, 1), date(2099, 12, 31))
    ),
}

ORDINARY: dict[str, Callable[[random.Random], str]] = {
    "free_text": lambda rng: _sentence(rng, rng.randrange(3, 15)),
    "person_name": lambda rng: (
        f"{rng.choice(FIRST_NAMES).title()} {rng.choice(LAST_NAMES).title()}"
    ),
    "order_number": lambda rng: f"ORD-{rng.randrange(2015, 2026)}-{rng.randrange(10**6):06d}",
    "amount": lambda rng: rng.choice(["", "$", "EUR "]) + f"{rng.randrange(10**6) / 100:,.2f}",
    "isbn": lambda rng: (
        f"978-{rng.randrange(10)}-{rng.randrange(10, 99)}-"
        f"{rng.randrange(100000, 999999)}-{rng.randrange(10)}"
    ),
    "uuid": lambda rng: (
        f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    ),
    "git_sha": lambda rng: _hex(rng, 40),
    "timestamp": lambda rng: (
        _date_between(rng, date(2020, 1, 1), date(2024, 12, 31)).isoformat()
        + f"T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
    ),
    "semantic_version": lambda rng: f"{rng.randrange(10)}.{rng.randrange(30)}.{rng.randrange(100)}",
    "sku": lambda rng: f"SKU-{_hex(rng, 4).upper()}-{_hex(rng, 4).upper()}",
    "postal_code": lambda rng: rng.choice(
        [f"{rng.randrange(10000, 99999)}", f"SW1A {rng.randrange(1, 9)}AA"]
    ),
    "percentage": lambda rng: f"{rng.randrange(1000) / 10}%",
    "tracking_number": lambda rng: f"1Z{_hex(rng, 6).upper()}{rng.randrange(10**9, 10**10)}",
    "url": lambda rng: f"https://shop.example.com/orders/{rng.randrange(10**6)}?page=2",
    "coordinates": lambda rng: f"{rng.uniform(-80, 80):.4f},{rng.uniform(-170, 170):.4f}",
    "status": lambda rng: rng.choice(["shipped", "pending", "cancelled", "on hold", "paid"]),
}


def labelled_values(size: int = DEFAULT_SIZE, *, seed: int = DEFAULT_SEED) -> list[LabelledValue]:
    """`size` labelled values: 55% with PII, 30% near misses, 15% ordinary values."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible on purpose
    near_miss_kinds = sorted(NEAR_MISSES)
    ordinary_kinds = sorted(ORDINARY)
    values = []
    for _ in range(size):
        roll = rng.random()
        if roll < 0.53:
            values.append(positive(rng, rng.choice(PII_TYPES)))
        elif roll < 0.55:
            values.append(two_kinds(rng))
        elif roll < 0.85:
            kind = rng.choice(near_miss_kinds)
            text = NEAR_MISSES[kind](rng)
            values.append(LabelledValue(text, frozenset(), kind, rng.choice(NEUTRAL_FIELDS)))
        else:
            kind = rng.choice(ordinary_kinds)
            text = ORDINARY[kind](rng)
            values.append(LabelledValue(text, frozenset(), kind, rng.choice(NEUTRAL_FIELDS)))
    return values


def realistic_records(count: int, *, seed: int = DEFAULT_SEED) -> list[dict[str, str]]:
    """Order-like records of 8 string fields, for measuring scan throughput."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible on purpose
    records = []
    for _ in range(count):
        first, last = rng.choice(FIRST_NAMES).title(), rng.choice(LAST_NAMES).title()
        note = _sentence(rng, rng.randrange(0, 12))
        if rng.random() < 0.1:
            note += f" card {make_card(rng)}"
        records.append(
            {
                "order_id": ORDINARY["order_number"](rng),
                "customer_name": f"{first} {last}",
                "email": make_email(rng),
                "phone": make_phone(rng),
                "amount": f"{rng.randrange(10**6) / 100:.2f}",
                "status": ORDINARY["status"](rng),
                "created_at": ORDINARY["timestamp"](rng),
                "note": note,
            }
        )
    return records
