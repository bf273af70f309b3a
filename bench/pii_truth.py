"""A labelled set for the PII benchmark that Atlas's own patterns did not write.

Positives come from Faker in the locales Atlas's users have; each is kept only if an
independent check agrees it is what Faker says it is:

- phone numbers, in every format Faker's provider writes for the locale (cycled, so
  each format appears): `phonenumbers.is_valid_number` with the locale's region;
- payment cards, from each of Faker's card providers, bare and grouped: an
  issuer-agnostic Luhn check on 13-19 digits;
- IBANs (Faker's iban for the locale), bare and in groups of four: ISO 13616 mod-97;
- US SSNs: the SSA rules (area not 000, 666 or 9xx; group not 00; serial not 0000);
- IPv4 and IPv6 addresses (IPv6 full and compressed): the `ipaddress` module;
- e-mail addresses: `email.utils.parseaddr` and a simple RFC 5322 dot-atom check;
- European national identifiers, each by python-stdnum's own validator called here
  (`stdnum.fr.nir`, `stdnum.de.idnr`, `stdnum.nl.bsn`, `stdnum.es.dni`/`nie`,
  `stdnum.it.codicefiscale`, `stdnum.eu.vat`), and the UK National Insurance number by
  HMRC's published allocation rules written out below (it has no check digit). Faker
  writes the French NIR (fr_FR ssn), the Dutch BSN (nl_NL ssn), the codice fiscale
  (it_IT ssn), Spanish NIF/NIE and VAT ids for DE, FR, IT, NL and ES; German tax ids
  (10 random digits and stdnum's ISO 7064 mod 11,10 check digit) and NINOs (random
  allowed letters) are made here. The BSN and the German tax id are mostly written near
  a context word ("BSN", "Steuer-IdNr"), some without one.

A Faker value its check refuses (e.g. a phone number outside any allocated range) is
dropped and counted, never labelled by Atlas's patterns. Values appear bare, inside
sentences with a context word ("call me at", "card", "IBAN") and inside sentences
without one; some items hold two values. Hard negatives (no PII) come in the kinds of
NEGATIVE_KINDS: timestamps with fractions, version and paragraph numbers, order and
invoice numbers, ISBNs, prices, dates, UUIDs, git hashes, MAC addresses, Luhn-failing
card-length numbers, IBANs with bad check digits, SSN-shaped numbers in forbidden
ranges, malformed IPs, e-mail look-alikes, tracking numbers and more, and for each
national identifier look-alikes its truth refuses (a wrong check digit or letter, written
next to the identifier's context word), NINOs with an unallocated prefix or a forbidden
letter, and 9- and 11-digit numbers (half of them passing the BSN or tax id check) in
order-like frames without a context word.

Every item knows the exact (start, end) character span and type of each PII value in
it. Bench-only code: Faker and phonenumbers are development dependencies.
"""

import ipaddress
import random
import re
import string
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr

import phonenumbers
from faker import Faker
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.it import codicefiscale
from stdnum.nl import bsn

DEFAULT_SEED = 13
DEFAULT_ITEMS = 12_000

LOCALES = {
    "en_US": "US",
    "en_GB": "GB",
    "de_DE": "DE",
    "fr_FR": "FR",
    "nl_NL": "NL",
    "es_ES": "ES",
    "it_IT": "IT",
}
PII_TYPES = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "us_ssn",
    "ipv4",
    "ipv6",
    "uk_nino",
    "fr_nir",
    "de_tax_id",
    "nl_bsn",
    "es_dni_nie",
    "it_fiscal_code",
    "eu_vat",
)
# The national identifiers, each written in the locale it belongs to (eu_vat: any of these).
NATIONAL_LOCALES = {
    "uk_nino": "en_GB",
    "fr_nir": "fr_FR",
    "de_tax_id": "de_DE",
    "nl_bsn": "nl_NL",
    "es_dni_nie": "es_ES",
    "it_fiscal_code": "it_IT",
}
VAT_LOCALES = ("de_DE", "fr_FR", "it_IT", "nl_NL", "es_ES")
# Nine or eleven bare digits pass these checks by chance (one in 11 random nine-digit
# numbers is a valid BSN): a context word or the column's name is what says they are one.
NEEDS_CONTEXT = ("de_tax_id", "nl_bsn")
# Columns such identifiers are kept in, for their bare values.
COLUMN_NAMES = {
    "nl_bsn": ("bsn", "burgerservicenummer", "klant_bsn", "bsnNummer"),
    "de_tax_id": ("steuer_id", "SteuerIdNr", "steuer_idnr", "idnr"),
}
CARD_PROVIDERS = (
    "visa13",
    "visa16",
    "visa19",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "jcb15",
    "jcb16",
    "maestro",
)


@dataclass(frozen=True)
class Span:
    pii_type: str
    start: int
    end: int


@dataclass(frozen=True)
class Item:
    text: str
    kind: str  # "phone/fr_FR/context", "negative/iso_timestamp", ...
    spans: tuple[Span, ...] = ()
    # The column the text sits in, when that says what it is ("bsn"); "" for free text.
    field: str = ""

    @property
    def undecidable(self) -> bool:
        """A BSN or German tax id with nothing saying what it is: not scored (see below)."""
        return self.kind.endswith("/no_context")

    @property
    def pii_types(self) -> set[str]:
        return {span.pii_type for span in self.spans}

    @property
    def is_negative(self) -> bool:
        return not self.spans


@dataclass
class TruthSet:
    items: list[Item]
    seed: int
    # Faker values an independent check refused, by type and by "type/locale": left out.
    dropped: Counter[str] = field(default_factory=Counter)


# --- independent truths -----------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ssn_ok(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    if not re.fullmatch(r"[0-9]{9}", digits):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_DOT_ATOM = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def email_ok(value: str) -> bool:
    _, address = parseaddr(value)
    return address == value and _DOT_ATOM.fullmatch(value) is not None


def phone_ok(value: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


# HMRC, National Insurance Manual NIM39110: the first letter is not D, F, I, Q, U or V;
# the second not D, F, I, O, Q, U or V; the prefixes BG, GB, KN, NK, NT, TN and ZZ are
# not allocated; six digits; a suffix A, B, C or D.
NINO_FIRST = "".join(c for c in string.ascii_uppercase if c not in "DFIQUV")
NINO_SECOND = "".join(c for c in string.ascii_uppercase if c not in "DFIOQUV")
NINO_UNALLOCATED = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


def nino_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if len(compact) != 9 or not compact[2:8].isdigit():
        return False
    first, second, suffix = compact[0], compact[1], compact[8]
    return (
        first in NINO_FIRST
        and second in NINO_SECOND
        and compact[:2] not in NINO_UNALLOCATED
        and suffix in "ABCD"
    )


NATIONAL_TRUTHS: dict[str, Callable[[str], bool]] = {
    "uk_nino": nino_ok,
    "fr_nir": nir.is_valid,
    "de_tax_id": idnr.is_valid,
    "nl_bsn": bsn.is_valid,
    "es_dni_nie": lambda value: dni.is_valid(value) or nie.is_valid(value),
    "it_fiscal_code": codicefiscale.is_valid,
    "eu_vat": vat.is_valid,
}


def ip_version(value: str) -> int | None:
    try:
        return ipaddress.ip_address(value).version
    except ValueError:
        return None


# --- positives ----------------------------------------------------------------------

CONTEXT_TEMPLATES = {
    "email": ["Email me at {v} please.", "Contact: {v}", "mail {v} for the invoice"],
    "phone": ["Call me at {v} tomorrow.", "Tel.: {v}", "mobile {v} (evenings)", "phone {v}"],
    "payment_card": ["Card {v} was declined.", "paid by credit card {v}", "Visa: {v}"],
    "iban": ["IBAN {v}", "Please transfer to IBAN: {v}.", "bank account {v} (EUR)"],
    "us_ssn": ["SSN {v}", "Social security number: {v}.", "ssn={v}"],
    "ipv4": ["client IP {v} blocked", "host {v} timed out", "IP address: {v}"],
    "ipv6": ["client IP {v} blocked", "IPv6 host {v} unreachable", "ip={v}"],
    "uk_nino": ["National Insurance number {v}", "NINO: {v}", "her NI number is {v}."],
    "fr_nir": ["numéro de sécurité sociale {v}", "NIR : {v}", "n° INSEE {v}"],
    "de_tax_id": ["Steuer-IdNr. {v}", "Steuer-ID: {v}", "Steueridentifikationsnummer {v}"],
    "nl_bsn": ["BSN {v}", "burgerservicenummer: {v}", "BSN-nummer {v} bekend"],
    "es_dni_nie": ["DNI {v}", "NIE: {v}", "con documento {v}"],
    "it_fiscal_code": ["codice fiscale {v}", "CF: {v}", "il codice fiscale è {v}."],
    "eu_vat": ["VAT {v}", "USt-IdNr. {v}", "partita IVA {v}", "n° TVA {v}", "BTW {v}"],
}
PLAIN_TEMPLATES = [
    "{v}",  # also a bare value, but counted under "plain" presentation
    "Noted {v} on Tuesday.",
    "see {v} above",
    "Ref: {v}",
    "{v} was in the last import",
    "Kunde schrieb {v} gestern.",
    "le client a donné {v} hier",
    "({v})",
]


class _Positives:
    def __init__(self, seed: int) -> None:
        self.fakers: dict[str, Faker] = {}
        for offset, locale in enumerate(LOCALES):
            fake = Faker(locale)
            fake.seed_instance(seed * 1000 + offset)
            self.fakers[locale] = fake
        self.phone_formats = {
            locale: list(fake.provider("faker.providers.phone_number").formats)
            for locale, fake in self.fakers.items()
        }
        self.phone_turn: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # draws refused before one was kept

    def phone(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        fake = self.fakers[locale]
        formats = self.phone_formats[locale]
        fmt = formats[self.phone_turn[locale] % len(formats)]  # every format in turn
        self.phone_turn[locale] += 1
        value = fake.numerify(fake.parse(fmt))
        return value, phone_ok(value, LOCALES[locale])

    def payment_card(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        provider = rng.choice(CARD_PROVIDERS)
        digits = self.fakers[locale].credit_card_number(card_type=provider)
        ok = luhn_ok(digits)
        style = rng.choice(("bare", "spaces", "dashes"))
        if style == "bare" or len(digits) == 13:  # 13-digit Visa has no usual grouping
            return digits, ok
        sep = " " if style == "spaces" else "-"
        if len(digits) in (14, 15):  # Amex and 15-digit JCB 4-6-5, Diners 4-6-4
            groups = [digits[:4], digits[4:10], digits[10:]]
        else:  # 16 in fours, 19 as 4-4-4-4-3
            groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
        return sep.join(groups), ok

    def iban(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers[locale].iban()
        ok = iban_ok(value)
        if rng.random() < 0.4:
            value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value, ok

    def us_ssn(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers["en_US"].ssn()
        ok = ssn_ok(value)
        if rng.random() < 0.2:
            value = value.replace("-", " ")
        return value, ok

    def email(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        fake = self.fakers[locale]
        value = rng.choice((fake.email, fake.free_email, fake.company_email))()
        return value, email_ok(value)

    def ipv4(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        fake = self.fakers[locale]
        value = rng.choice((fake.ipv4, fake.ipv4_private, fake.ipv4_public))()
        return value, ip_version(value) == 4

    # National identifiers: Faker's where it writes them, otherwise made here; each is
    # judged by NATIONAL_TRUTHS (a value it refuses is dropped and counted).

    def uk_nino(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        # Faker's en_GB ssn always uses the unallocated ZZ prefix: random allowed letters.
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        digits = _digits(rng, 6)
        value = f"{prefix}{digits}{rng.choice('ABCD')}"
        if rng.random() < 0.4:
            value = f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {value[-1]}"
        return value, nino_ok(value)

    def fr_nir(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers["fr_FR"].ssn()
        ok = nir.is_valid(value)
        if rng.random() < 0.3:  # as on the carte Vitale: 1 85 05 78 006 084 36
            parts = (1, 2, 2, 2, 3, 3, 2)
            at, groups = 0, []
            for size in parts:
                groups.append(value[at : at + size])
                at += size
            value = " ".join(groups)
        return value, ok

    def de_tax_id(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        # Most random bodies break the IdNr's rule on repeated digits: draw again (the
        # refused draws are counted in self.refused), at most 100 times.
        for _ in range(100):
            body = str(rng.randint(1, 9)) + _digits(rng, 9)
            value = body + mod_11_10.calc_check_digit(body)
            ok = idnr.is_valid(value)
            if ok:
                break
            self.refused["de_tax_id"] += 1
        if rng.random() < 0.3:
            value = f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"
        return value, ok

    def nl_bsn(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers["nl_NL"].ssn()
        ok = bsn.is_valid(value)
        if rng.random() < 0.2:
            value = f"{value[:4]}.{value[4:6]}.{value[6:]}"
        return value, ok

    def es_dni_nie(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        fake = self.fakers["es_ES"]
        value = fake.nif() if rng.random() < 0.6 else fake.nie()
        return value, dni.is_valid(value) or nie.is_valid(value)

    def it_fiscal_code(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers["it_IT"].ssn()
        return value, codicefiscale.is_valid(value)

    def eu_vat(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers[locale].vat_id()
        return value, vat.is_valid(value)

    def ipv6(self, rng: random.Random, locale: str) -> tuple[str, bool]:
        value = self.fakers[locale].ipv6()
        if rng.random() < 0.5:  # Faker writes them full; logs often compress them
            value = str(ipaddress.IPv6Address(value))
        return value, ip_version(value) == 6


# Weights of the types among positives: phones have the most shapes.
TYPE_WEIGHTS = {
    "phone": 30,
    "payment_card": 14,
    "iban": 12,
    "email": 12,
    "us_ssn": 8,
    "ipv4": 12,
    "ipv6": 12,
    "uk_nino": 5,
    "fr_nir": 5,
    "de_tax_id": 5,
    "nl_bsn": 5,
    "es_dni_nie": 5,
    "it_fiscal_code": 5,
    "eu_vat": 10,
}


def _place(template: str, values: list[tuple[str, str]]) -> tuple[str, tuple[Span, ...]]:
    """Fill {v} (and {w}) in order, recording each value's span."""
    text, spans = "", []
    rest = template
    for pii_type, value in values:
        for placeholder in ("{v}", "{w}"):
            at = rest.find(placeholder)
            if at >= 0:
                break
        text += rest[:at]
        spans.append(Span(pii_type, len(text), len(text) + len(value)))
        text += value
        rest = rest[at + 3 :]
    return text + rest, tuple(spans)


def _positive(rng: random.Random, positives: _Positives, dropped: Counter[str]) -> Item | None:
    pii_type = rng.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()))[0]
    if pii_type == "us_ssn":
        locale = "en_US"
    elif pii_type == "eu_vat":
        locale = rng.choice(VAT_LOCALES)
    else:
        locale = NATIONAL_LOCALES.get(pii_type) or rng.choice(list(LOCALES))
    make = getattr(positives, pii_type)
    value, ok = make(rng, locale)
    if not ok:
        dropped[pii_type] += 1
        dropped[f"{pii_type}/{locale}"] += 1
        return None
    roll = rng.random()
    if pii_type in NEEDS_CONTEXT:
        # Mostly next to their context word, some bare in a column named for them; the
        # rest in a sentence with nothing saying what they are, which no detector can
        # tell from any other number passing the check by chance: those are kept in the
        # set, as "no_context", but not scored.
        if roll < 0.8:
            text, spans = _place(rng.choice(CONTEXT_TEMPLATES[pii_type]), [(pii_type, value)])
            return Item(text, f"{pii_type}/{locale}/context", spans)
        if roll < 0.9:
            text, spans = _place("{v}", [(pii_type, value)])
            column = rng.choice(COLUMN_NAMES[pii_type])
            return Item(text, f"{pii_type}/{locale}/bare", spans, field=column)
        text, spans = _place(rng.choice(PLAIN_TEMPLATES), [(pii_type, value)])
        return Item(text, f"{pii_type}/{locale}/no_context", spans)
    if roll < 0.35:
        presentation, template = "bare", "{v}"
    elif roll < 0.65:
        presentation, template = "context", rng.choice(CONTEXT_TEMPLATES[pii_type])
    elif roll < 0.93:
        presentation, template = "plain", rng.choice(PLAIN_TEMPLATES)
    else:
        # Two values of different types in one text.
        # (not with an identifier that needs a context word, which the template lacks)
        other = rng.choice([t for t in TYPE_WEIGHTS if t not in (pii_type, *NEEDS_CONTEXT)])
        if other == "us_ssn":
            other_locale = "en_US"
        elif other == "eu_vat":
            other_locale = locale if locale in VAT_LOCALES else rng.choice(VAT_LOCALES)
        else:
            other_locale = NATIONAL_LOCALES.get(other, locale)
        second, second_ok = getattr(positives, other)(rng, other_locale)
        if not second_ok:
            dropped[other] += 1
            dropped[f"{other}/{other_locale}"] += 1
            return None
        text, spans = _place(
            rng.choice(["{v} / {w}", "Contact {v}, otherwise {w}.", "{v}; {w}"]),
            [(pii_type, value), (other, second)],
        )
        return Item(text, f"{pii_type}/{locale}/two", spans)
    text, spans = _place(template, [(pii_type, value)])
    return Item(text, f"{pii_type}/{locale}/{presentation}", spans)


# --- hard negatives -----------------------------------------------------------------


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _hex(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(count))


def _timestamp(rng: random.Random) -> str:
    date = f"20{rng.randint(10, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    time = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    sep = rng.choice("T ")
    zone = rng.choice(("", "Z", "+00:00", "+01:00"))
    return f"{date}{sep}{time}.{_digits(rng, rng.choice((3, 6)))}{zone}"


def _version(rng: random.Random) -> str:
    parts = rng.choice((3, 3, 4))
    if parts == 3:  # dotted triples such as 219.141.196
        return ".".join(str(rng.randint(0, 255)) for _ in range(3))
    return f"{rng.randint(1, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(256, 9999)}"


def _paragraph(rng: random.Random) -> str:
    numbers = ".".join(str(rng.randint(1, 40)) for _ in range(rng.randint(2, 4)))
    return rng.choice(("§ {}", "section {}", "Art. {}", "clause {}", "{}")).format(numbers)


def _order(rng: random.Random) -> str:
    return rng.choice(
        (
            f"PO {_digits(rng, 8)}",
            f"Order #{rng.randint(10**9, 10**10 - 1)}",
            f"SO-2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{_digits(rng, 4)}",
            f"Bestellnr. {_digits(rng, 7)}",
        )
    )


def _invoice(rng: random.Random) -> str:
    return rng.choice(
        (
            f"INV-20{rng.randint(20, 30)}-{rng.randint(1, 999999):06d}",
            f"Rechnung Nr. 2026/{_digits(rng, 6)}",
            f"Facture F{_digits(rng, 9)}",
        )
    )


def _isbn(rng: random.Random) -> str:
    body = "978" + _digits(rng, 9)
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body)) % 10) % 10
    isbn = body + str(check)
    if rng.random() < 0.5:
        isbn = f"{isbn[:3]}-{isbn[3]}-{isbn[4:6]}-{isbn[6:12]}-{isbn[12]}"
    return f"ISBN {isbn}"


def _price(rng: random.Random) -> str:
    whole, cents = rng.randint(1, 999_999), rng.randint(0, 99)
    return rng.choice(
        (
            f"€{whole:,}.{cents:02d}".replace(",", "X").replace(".", ",").replace("X", "."),
            f"${whole:,}.{cents:02d}",
            f"EUR {whole}.{cents:02d}",
            f"{whole:,} {cents:02d} £".replace(",", " "),
        )
    )


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice(
        (f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d}/{m}/{y}")
    )


def _luhn_failing(rng: random.Random) -> str:
    while True:
        number = rng.choice("3456") + _digits(rng, 15)
        if not luhn_ok(number):
            break
    if rng.random() < 0.5:
        number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _bad_iban(rng: random.Random, fakers: dict[str, Faker]) -> str:
    value = fakers[rng.choice(list(LOCALES))].iban()
    while True:
        candidate = value[:2] + f"{rng.randint(2, 98):02d}" + value[4:]
        if not iban_ok(candidate):
            return candidate


def _bad_ssn(rng: random.Random) -> str:
    area, group, serial = f"{rng.randint(1, 899):03d}", _digits(rng, 2), _digits(rng, 4)
    broken = rng.choice(("000", "666", "9xx", "group", "serial"))
    if broken == "9xx":
        area = f"9{_digits(rng, 2)}"
    elif broken == "group":
        group = "00"
    elif broken == "serial":
        serial = "0000"
    else:
        area = broken
    return f"{area}-{group}-{serial}"


def _bad_ip(rng: random.Random) -> str:
    a, b, c = (rng.randint(0, 255) for _ in range(3))
    return rng.choice(
        (
            f"{rng.randint(256, 999)}.{a}.{b}.{c}",  # 256.1.2.3
            f"{a}.{b}.{c}.{rng.randint(256, 999)}",
            f"{_hex(rng, 4)}::{_hex(rng, 3)}g::{_hex(rng, 2)}",
            ":".join(_hex(rng, 4) for _ in range(9)),
        )
    )


def _email_lookalike(rng: random.Random) -> str:
    return rng.choice(
        (
            "user@localhost",
            "a@b",
            f"root@server{rng.randint(1, 99):02d}",
            f"@{rng.choice(('atlas_data', 'jdoe', 'support'))}",
            "name [at] example [dot] com",
            f"admin@intranet-{rng.randint(1, 9)}",
        )
    )


def _tracking(rng: random.Random) -> str:
    return rng.choice(
        (
            f"1Z{_hex(rng, 6).upper()}{_digits(rng, 10)}",
            f"JJD{_digits(rng, 18)}",
            f"{rng.choice(('LX', 'RR', 'CP'))}{_digits(rng, 9)}DE",
            f"00{_digits(rng, 18)}",
        )
    )


def _refused(pii_type: str, make: Callable[[], str]) -> str:
    """A look-alike `pii_type`'s truth refuses: made again until it does."""
    while True:
        value = make()
        if not NATIONAL_TRUTHS[pii_type](value):
            return value


def _other_digit(rng: random.Random, digit: str) -> str:
    return rng.choice([d for d in string.digits if d != digit])


def _other_letter(rng: random.Random, letter: str, alphabet: str) -> str:
    return rng.choice([c for c in alphabet if c != letter.upper()])


def _bad_nino(rng: random.Random) -> str:
    digits, suffix = _digits(rng, 6), rng.choice("ABCD")
    broken = rng.choice(("unallocated", "unallocated", "first", "second", "suffix"))
    first, second = rng.choice(NINO_FIRST), rng.choice(NINO_SECOND)
    if broken == "unallocated":
        first, second = rng.choice(NINO_UNALLOCATED)
    elif broken == "first":
        first = rng.choice("DFIQUV")
    elif broken == "second":
        second = rng.choice("DFIOQUV")
    else:
        suffix = rng.choice("EFGHJKMNPRSTWXYZ")
    value = f"{first}{second}{digits}{suffix}"
    if rng.random() < 0.4:
        value = f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{rng.choice(('National Insurance number', 'NINO:', 'NI number'))} {value}"


def _bad_nir(rng: random.Random, fakers: dict[str, Faker]) -> str:
    def make() -> str:
        value = fakers["fr_FR"].ssn()
        return value[:13] + f"{(int(value[13:]) + rng.randint(1, 96)) % 97 + 1:02d}"

    return (
        f"{rng.choice(('NIR', 'numéro de sécurité sociale', 'INSEE'))} {_refused('fr_nir', make)}"
    )


def _bad_idnr(rng: random.Random) -> str:
    def make() -> str:
        body = str(rng.randint(1, 9)) + _digits(rng, 9)
        return body + _other_digit(rng, mod_11_10.calc_check_digit(body))

    return f"{rng.choice(('Steuer-IdNr.', 'Steuer-ID:', 'IdNr'))} {_refused('de_tax_id', make)}"


def _bad_bsn(rng: random.Random, fakers: dict[str, Faker]) -> str:
    def make() -> str:
        value = fakers["nl_NL"].ssn()
        return value[:8] + _other_digit(rng, value[8])

    return f"{rng.choice(('BSN', 'burgerservicenummer', 'BSN:'))} {_refused('nl_bsn', make)}"


def _bad_dni_nie(rng: random.Random, fakers: dict[str, Faker]) -> str:
    def make() -> str:
        fake = fakers["es_ES"]
        value = fake.nif() if rng.random() < 0.6 else fake.nie()
        return value[:-1] + _other_letter(rng, value[-1], "TRWAGMYFPDXBNJZSQVHLCKE")

    return f"{rng.choice(('DNI', 'NIE:', 'documento'))} {_refused('es_dni_nie', make)}"


def _bad_fiscal_code(rng: random.Random, fakers: dict[str, Faker]) -> str:
    def make() -> str:
        value = fakers["it_IT"].ssn()
        return value[:-1] + _other_letter(rng, value[-1], string.ascii_uppercase)

    return f"{rng.choice(('codice fiscale', 'CF:'))} {_refused('it_fiscal_code', make)}"


def _bad_vat(rng: random.Random, fakers: dict[str, Faker]) -> str:
    def make() -> str:
        value = fakers[rng.choice(VAT_LOCALES)].vat_id()
        digits = [i for i, c in enumerate(value) if c.isdigit()]
        at = digits[-1] if value[:2] != "NL" else digits[-4]  # NL: the digit before B
        return value[:at] + _other_digit(rng, value[at]) + value[at + 1 :]

    word = rng.choice(("VAT", "USt-IdNr.", "partita IVA", "TVA", "BTW"))
    return f"{word} {_refused('eu_vat', make)}"


def _digits_no_context(rng: random.Random) -> str:
    """Nine or eleven digits, half passing the BSN or tax id check, framed as no identifier."""
    size = rng.choice((9, 11))
    if rng.random() < 0.5:
        while True:
            if size == 9:
                number = _digits(rng, 9)
                if bsn.is_valid(number):
                    break
            else:
                body = str(rng.randint(1, 9)) + _digits(rng, 9)
                number = body + mod_11_10.calc_check_digit(body)
                if idnr.is_valid(number):
                    break
    else:
        number = _digits(rng, size)
    return rng.choice(
        (
            f"Order #{number}",
            f"Kundennummer {number}",
            f"Sendungsnummer {number}",
            f"ordernummer {number}",
            f"batch {number} loaded",
            f"ref. {number}",
        )
    )


NEGATIVE_KINDS: dict[str, Callable[[random.Random, dict[str, Faker]], str]] = {
    "iso_timestamp_fraction": lambda rng, f: _timestamp(rng),
    "time_of_day": lambda rng, f: (
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    ),
    "unix_epoch": lambda rng, f: (
        str(rng.randint(1_500_000_000, 1_900_000_000)) + rng.choice(("", _digits(rng, 3)))
    ),
    "version_number": lambda rng, f: _version(rng),
    "semver": lambda rng, f: (
        f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}-rc.{rng.randint(1, 9)}"
    ),
    "paragraph_number": lambda rng, f: _paragraph(rng),
    "order_number": lambda rng, f: _order(rng),
    "invoice_number": lambda rng, f: _invoice(rng),
    "isbn": lambda rng, f: _isbn(rng),
    "price": lambda rng, f: _price(rng),
    "date": lambda rng, f: _date(rng),
    "uuid": lambda rng, f: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "git_hash": lambda rng, f: _hex(rng, rng.choice((7, 12, 40))),
    "mac_address": lambda rng, f: rng.choice((":", "-")).join(_hex(rng, 2) for _ in range(6)),
    "luhn_failing_card": lambda rng, f: _luhn_failing(rng),
    "iban_bad_check": lambda rng, f: _bad_iban(rng, f),
    "ssn_forbidden_range": lambda rng, f: _bad_ssn(rng),
    "malformed_ip": lambda rng, f: _bad_ip(rng),
    "email_lookalike": lambda rng, f: _email_lookalike(rng),
    "tracking_number": lambda rng, f: _tracking(rng),
    "coordinates": lambda rng, f: f"{rng.uniform(-90, 90):.6f}, {rng.uniform(-180, 180):.6f}",
    "row_count": lambda rng, f: f"{rng.randint(1_000_000, 99_999_999):,} rows".replace(",", " "),
    "measurement": lambda rng, f: f"{rng.randint(1000, 9_999_999):,} bytes",
    "postcode_city": lambda rng, f: (
        f"{_digits(rng, 5)} {rng.choice(('Paris', 'Berlin', 'Madrid', 'Roma'))}"
    ),
    "hex_colour": lambda rng, f: f"#{_hex(rng, 6)}",
    "percentage": lambda rng, f: f"{rng.uniform(0, 100):.2f} %",
    "year_range": lambda rng, f: f"{rng.randint(1990, 2020)}-{rng.randint(2021, 2030)}",
    "nino_not_allowed": lambda rng, f: _bad_nino(rng),
    "nir_bad_key": lambda rng, f: _bad_nir(rng, f),
    "tax_id_bad_check": lambda rng, f: _bad_idnr(rng),
    "bsn_bad_check": lambda rng, f: _bad_bsn(rng, f),
    "dni_nie_bad_letter": lambda rng, f: _bad_dni_nie(rng, f),
    "fiscal_code_bad_check": lambda rng, f: _bad_fiscal_code(rng, f),
    "vat_bad_check": lambda rng, f: _bad_vat(rng, f),
    "digits_9_11_no_context": lambda rng, f: _digits_no_context(rng),
}
NEGATIVE_TEMPLATES = [
    "{v}",
    "{v}",
    "Updated at {v} by the nightly job.",
    "value: {v}",
    "See {v} for details.",
    "Ticket mentions {v}, nothing else.",
]


def _carries_truth(text: str) -> bool:
    """A negative must not hold, by the same truths, what the positives are labelled by."""
    for run in re.findall(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])", text):
        if luhn_ok(re.sub(r"[ -]", "", run)):
            return True
    return any(ip_version(token.strip(",.;()")) for token in text.split())


def _negative(rng: random.Random, fakers: dict[str, Faker]) -> Item:
    kind = rng.choice(list(NEGATIVE_KINDS))
    while True:
        value = NEGATIVE_KINDS[kind](rng, fakers)
        if not _carries_truth(value):
            break
    return Item(rng.choice(NEGATIVE_TEMPLATES).format(v=value), f"negative/{kind}")


def truth_set(
    size: int = DEFAULT_ITEMS, seed: int = DEFAULT_SEED, negatives: float = 0.35
) -> TruthSet:
    """`size` items, about `negatives` of them hard negatives; the same for the same seed."""
    rng = random.Random(seed)
    positives = _Positives(seed)
    result = TruthSet(items=[], seed=seed)
    while len(result.items) < size:
        if rng.random() < negatives:
            result.items.append(_negative(rng, positives.fakers))
            continue
        item = _positive(rng, positives, result.dropped)
        if item is not None:
            result.items.append(item)
    result.dropped.update(positives.refused)
    return result
