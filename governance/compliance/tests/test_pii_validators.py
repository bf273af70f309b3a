from datetime import date

import pytest

from governance.compliance.models import PiiValidator
from governance.compliance.pii import validators
from governance.compliance.pii.validators import (
    IBAN_LENGTHS,
    VALIDATORS,
    calendar_date,
    email_domain,
    get_validator,
    iban_mod97,
    ipv4,
    ipv6,
    luhn,
    luhn_checksum_ok,
    phone,
    us_ssn,
)


def test_there_is_a_validator_for_every_choice_stewards_can_pick():
    assert set(VALIDATORS) == set(PiiValidator.values)


def test_an_unknown_validator_is_an_error():
    with pytest.raises(ValueError, match="Unknown PII validator"):
        get_validator("checksum_of_my_own")


# --- Payment cards -----------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",  # Visa
        "4012888888881881",
        "5555555555554444",  # Mastercard
        "2223003122003222",  # Mastercard 2-series
        "378282246310005",  # American Express
        "6011111111111117",  # Discover
        "3530111333300000",  # JCB
        "30569309025904",  # Diners Club
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
    ],
)
def test_luhn_accepts_real_test_card_numbers(number):
    assert luhn(number)


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # check digit off by one
        "5555555555554443",
        "378282246310006",
        "0000000000000000",  # passes Luhn, but no card is all one digit
        "4111 1111 1111 111",  # too short for Visa
        "4111a111111111111",
    ],
)
def test_luhn_rejects_numbers_failing_the_check(number):
    assert not luhn(number)


@pytest.mark.parametrize(
    "number",
    [
        "2131-710347-82989",  # JCB, 15 digits from 2131 (issue 13: was missed)
        "180000000000002",  # JCB, 15 digits from 1800
        "3589000000000000009",  # JCB, 19 digits
        "4111111111111111003",  # Visa, 19 digits
        "2720000000000005",  # Mastercard 2-series, last prefix
        "36000000000008",  # Diners Club, 14 digits
        "6440000000000005",  # Discover 644-649
        "6221260000000000",  # Discover 622126-622925
        "6250000000000000005",  # UnionPay, 19 digits
        "675900000000",  # Maestro, 12 digits
        "3511027989495675",  # JCB's 35 block below 3528, as Faker writes it
    ],
)
def test_luhn_knows_the_whole_issuer_table(number):
    assert luhn(number)


def test_luhn_requires_a_known_issuer_prefix():
    # Luhn-valid, but no issuer hands out 16-digit numbers starting with 1 or 9.
    for number in ("1234567812345670", "9111111111111110"):
        assert luhn_checksum_ok(number)
        assert not luhn(number)


def test_card_digits_in_the_middle_of_a_longer_code_are_not_a_card():
    assert luhn("4111 1111 1111 1111", "card ", "")
    assert not luhn("4111 1111 1111 1111", "ref 12 ", "")
    assert not luhn("6016 1331 9268 19", "IBAN GB29 NWBK ", "")


# --- IBAN --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "NO9386011117947",  # the shortest
        "ES9121000418450200051332",
        "CH9300762011623852957",
        "gb82west12345698765432",  # lower case: still the same account
    ],
)
def test_iban_accepts_valid_ibans(iban):
    assert iban_mod97(iban) is True


@pytest.mark.parametrize(
    "iban",
    [
        "GB81WEST12345698765432",  # check digits wrong
        "DE88370400440532013000",
        "DE89370400440532013001",  # account changed
        "GB82WEST1234569876543",  # one character short for GB
        "GB82WEST123456987654321",
        "XX82WEST12345698765432",  # no such country
        "GB00WEST12345698765432",  # check digits 00 are never issued
        "DE8937040044053201300!",
    ],
)
def test_iban_rejects_bad_check_digits_lengths_and_countries(iban):
    assert iban_mod97(iban) is False


def test_iban_length_table_knows_the_common_countries():
    assert IBAN_LENGTHS["DE"] == 22
    assert IBAN_LENGTHS["GB"] == 22
    assert IBAN_LENGTHS["FR"] == 27
    assert IBAN_LENGTHS["NO"] == 15
    assert IBAN_LENGTHS["MT"] == 31
    assert "US" not in IBAN_LENGTHS


def test_iban_followed_by_a_word_accepts_only_the_iban_part():
    candidate = "ES91 2100 0418 4502 0005 1332 EUR"
    assert iban_mod97(candidate) == len("ES91 2100 0418 4502 0005 1332")
    assert iban_mod97("ES92 2100 0418 4502 0005 1332 EUR") is False


# --- US SSN ------------------------------------------------------------------------


@pytest.mark.parametrize("ssn", ["123-45-6789", "001-01-0001", "899-99-9999", "665-12-3456"])
def test_ssn_accepts_valid_numbers(ssn):
    assert us_ssn(ssn)


@pytest.mark.parametrize(
    "ssn",
    [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "900-12-3456",  # areas 900-999
        "999-12-3456",
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "123-45-678",
    ],
)
def test_ssn_rejects_invalid_areas_groups_and_serials(ssn):
    assert not us_ssn(ssn)


# --- IP addresses ------------------------------------------------------------------


@pytest.mark.parametrize("address", ["192.168.0.1", "8.8.8.8", "10.2.0.1", "255.255.255.255"])
def test_ipv4_accepts_addresses(address):
    assert ipv4(address)


@pytest.mark.parametrize("address", ["256.1.1.1", "1.2.3.999", "01.02.03.04", "1.2.3", "1.2.3.4.5"])
def test_ipv4_rejects_impossible_octets_and_leading_zeros(address):
    assert not ipv4(address)


@pytest.mark.parametrize(
    ("before", "after"),
    [("v", ""), ("", ".5"), ("1.", ""), ("version ", ""), ("firmware: ", ""), ("build ", "")],
)
def test_ipv4_rejects_version_strings(before, after):
    assert not ipv4("1.2.3.4", before, after)


@pytest.mark.parametrize(
    ("before", "after"), [("host ", ""), ("http://", ":8080/"), ("ip=", ", port 22"), ("", ".")]
)
def test_ipv4_accepts_addresses_in_their_usual_places(before, after):
    assert ipv4("10.2.0.1", before, after)


@pytest.mark.parametrize(
    "address",
    [
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "FE80::1A2B",
        "2001:db8:1::",
    ],
)
def test_ipv6_accepts_addresses(address):
    assert ipv6(address)


@pytest.mark.parametrize(
    "candidate",
    [
        "::",  # unspecified
        "::1",  # loopback: about no one
        "00:1a:2b:3c:4d:5e",  # a MAC address
        "10:15:30",  # a time of day
        "fe80::1::2",  # two compressions
        "dead:beef:cafe",
    ],
)
def test_ipv6_rejects_what_is_not_an_address(candidate):
    assert not ipv6(candidate)


def test_ipv6_rejects_candidates_glued_to_words():
    assert not ipv6("a::b", "Foo", "ar")  # Foo::Bar
    assert not ipv6("2001:db8::1", "12:", "")
    assert ipv6("2001:db8::1", "ip:", "")
    assert ipv6("2001:db8::1", "[", "]:443")
    assert not ipv6("::ffff:192", "", ".0.2.128")  # cut short by the regex


# --- Email -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["jane.doe@example.com", "a+news@mail.example.co.uk", "J_Doe99@uni-berlin.de", "x@a.io"],
)
def test_email_accepts_plausible_addresses(address):
    assert email_domain(address)


@pytest.mark.parametrize(
    "candidate",
    [
        "logo@2x.png",  # image names, not addresses
        "icon@3x.JPG",
        "user@localhost",
        "user@example..com",
        "user@-example.com",
        "user@example-.com",
        ".user@example.com",
        "user.@example.com",
        "jane..doe@example.com",
        "user@example.c",
        "user@example.c0m",
        "no-at-sign.example.com",
    ],
)
def test_email_rejects_implausible_domains_and_parts(candidate):
    assert not email_domain(candidate)


# --- Phone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["+1 415 555 0134", "(415) 555-0134", "020 7946 0958", "4155550134", "+44 20 7946 0958"],
)
def test_phone_accepts_valid_numbers(number):
    assert phone(number)


def test_phone_rejects_too_few_or_too_many_digits():
    assert not phone("555 013")
    assert not phone("1234 5678 9012 3456")
    assert not phone("000 000 0000")


@pytest.mark.parametrize(
    ("before", "after"),
    [("ORD-", ""), ("ref", ""), ("12 ", ""), ("", "-db5e-4b88"), ("", " 1111"), ("NL51 AXXE ", "")],
)
def test_phone_rejects_slices_of_longer_codes(before, after):
    assert not phone("2018 399 253", before, after)


@pytest.mark.parametrize(
    "number",
    [
        # Issue 13's misses: French pairs, the trunk prefix in brackets, Dutch mobiles,
        # German five-digit area codes.
        "04 57 06 40 42",
        "+33 5 16 85 11 43",
        "+33 (0)3 88 12 34 56",
        "+31(0)50-3694148",
        "+31 6 35331277",
        "04744 36143",
        "(07773) 190289",
        # And other ways numbers are written.
        "0049 30 1234 5678",  # 00 instead of +
        "+1 (415) 555-0134",
        "1-415-555-0134",  # the US trunk 1
        "+1-202-555-0173x12",  # an extension
        "030/12345678",
        "+34 912 34 56 78",
        "06 1234 5678",  # Italy: the leading 0 belongs to the number
    ],
)
def test_phone_accepts_real_world_shapes(number):
    assert phone(number)


def test_a_number_with_its_country_code_needs_no_default_region():
    # Japan and Australia are not in ATLAS_PHONE_REGIONS' default list.
    assert phone("+81 3-1234-5678")
    assert phone("+61 2 9876 5432")
    assert phone("0081 3-1234-5678")
    assert phone("+55 11 91234-5678")
    # A São Paulo mobile written the Brazilian way: no default region's numbers look so.
    assert not phone("(11) 91234-5678")


def test_the_default_regions_come_from_the_setting(settings):
    settings.ATLAS_PHONE_REGIONS = ["BR"]
    assert validators.phone_regions() == ("BR",)
    assert phone("(11) 91234-5678")
    assert not phone("04744 36143")  # German, no longer a default region
    assert phone("+49 4744 36143")


def test_an_unknown_region_in_the_setting_is_an_error(settings):
    settings.ATLAS_PHONE_REGIONS = ["GB", "UK"]
    with pytest.raises(ValueError, match="UK"):
        phone("020 7946 0958")


@pytest.mark.parametrize(
    "number",
    [
        "+1 123 456 7890",  # no area code starts with 1
        "+33 5 16 85 11 4",  # one digit short
        "4744 36143",  # a German number without its trunk 0 is not how Germans write it
        "93528211",  # valid as a German number only without its trunk 0
        "1782211933",  # a Unix time, not an Italian personal number
        "166.241.251",  # a version number, not an Italian premium-rate number
        "0.580559",  # a coordinate
        "174.239.19.657",  # a malformed IP address
        "2026/914222",  # a year and a serial
    ],
)
def test_phone_rejects_what_libphonenumber_or_the_shape_refuses(number):
    assert not phone(number)


@pytest.mark.parametrize(
    ("candidate", "before", "after"),
    [
        ("27.560310", "at 2024-01-15T05:22:", ""),  # the seconds of a timestamp
        ("27.560310", "at 2024-01-15T05:22:", "Z"),
        ("219.141.196", "", ""),  # a dotted triple
        ("219.141.196", "version ", ""),
        ("93528211", "PO ", ""),  # an order number
        ("0441683", "Bestellnr. ", ""),
        ("20240115", "invoice no. ", ""),
        ("0612345678", "", ":30"),
    ],
)
def test_phone_rejects_issue_13s_false_alarms(candidate, before, after):
    assert not phone(candidate, before, after)


@pytest.mark.parametrize(
    ("before", "words", "named"),
    [
        ("BSN: ", "identifier", True),
        ("BSN-nummer ", "identifier", True),
        ("Steueridentifikationsnummer ", "identifier", True),
        ("see IdNr ", "identifier", True),
        ("social security number: ", "identifier", True),
        ("USt-IdNr. FRLO ", "identifier", True),  # a French VAT number's key between
        ("TVA FRcb ", "identifier", True),
        ("(BSN ", "identifier", True),
        ("Call me at ", "identifier", False),
        ("Tel.: ", "identifier", False),
        ("casino ", "identifier", False),  # "nino" inside a word
        ("Tel. DE12 ", "identifier", False),
        ("", "identifier", False),
        ("Rechnung Nr. ", "reference", True),
        ("invoice # ", "reference", True),
        ("Updated at PO ", "reference", True),
        ("ref. ", "reference", True),
        ("repo ", "reference", False),
        ("no. ", "reference", False),
    ],
)
def test_a_label_names_the_number_after_it(before, words, named):
    vocabulary = {
        "identifier": validators.IDENTIFIER_WORDS,
        "reference": validators.REFERENCE_WORDS,
    }[words]
    assert validators.named_before(before, vocabulary) is named


@pytest.mark.parametrize(
    ("candidate", "before", "is_phone"),
    [
        ("913208570", "BSN: ", False),  # also the shape of a Madrid number
        ("78 692 358 182", "Steuer-ID: ", False),
        ("397800376", "VAT FR3R ", False),
        ("712072275", "ref. ", False),
        ("913208570", "Tel: ", True),
        # Written as a phone number, or with its country code: a label does not refuse it.
        ("06 34 26 97 32", "Ref: ", True),
        ("+34 717 87 99 97", "Ref: ", True),
        ("+34 913 20 85 70", "BSN ", True),
    ],
)
def test_a_number_named_as_something_else_is_not_a_phone(candidate, before, is_phone):
    assert phone(candidate, before, "") is is_phone


def test_a_declared_country_reads_numbers_without_their_country_code():
    danish = "32 12 34 56"
    assert not phone(danish)  # not a number of ATLAS_PHONE_REGIONS' countries
    with validators.declared_phone_regions(("DK",)):
        assert phone(danish)
        assert not phone("913208570")  # Spanish, valid only where Spain is a default
        assert phone("+34 913 20 85 70")  # a country code says its own country
    assert phone("913208570")
    with validators.declared_phone_regions(None):
        assert phone("913208570")


def test_a_country_code_must_be_one_libphonenumber_knows():
    assert validators.check_region(" nl ") == "NL"
    with pytest.raises(ValueError, match="'UK' is not a country code"):
        validators.check_region("UK")


def test_years_and_millisecond_times_are_not_phones():
    assert not phone("2013-2029", "", "")
    assert not phone("1519599960338", "Updated at ", " by the nightly job.")


def test_a_label_with_a_colon_is_not_a_timestamp():
    assert phone("0612345678", "Tel:", "")
    assert phone("+33 6 12 34 56 78", "tel.: ", ".")


# --- Date of birth -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["1984-03-12", "12/03/1984", "12.03.1984", "1900-01-01"])
def test_date_accepts_real_past_dates(value):
    assert calendar_date(value)


def test_date_rejects_impossible_future_and_old_dates():
    tomorrow = date.today().replace(year=date.today().year + 1)
    for value in ("1987-02-30", "31/04/1990", "1975-13-01", "1899-12-31", tomorrow.isoformat()):
        assert not calendar_date(value), value


def test_date_rejects_mixed_separators():
    assert not calendar_date("1984-03/12")


def test_validators_treat_only_ascii_digits_as_digits():
    # RE2's \d is ASCII; a validator must not accept what the regex never finds.
    assert validators._digits("٤١١١") == ""


def _numbers_to_try(country_code: int, rng) -> set[str]:
    """National numbers of every kind libphonenumber has an example of for the code's
    regions, each with digits changed, cut short and made longer, and random ones."""
    import phonenumbers

    numbers = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]:
        for kind in range(12):  # every PhoneNumberType
            example = (
                phonenumbers.example_number_for_type(region, kind)
                if region != "001"
                else phonenumbers.example_number_for_non_geo_entity(country_code)
            )
            if example is None:
                continue
            national = phonenumbers.national_significant_number(example)
            numbers |= {national, national[:-1], national + str(rng.randrange(10))}
            for _ in range(3):
                at = rng.randrange(len(national))
                numbers.add(national[:at] + str(rng.randrange(10)) + national[at + 1 :])
    for _ in range(10):
        numbers.add(str(rng.randrange(10 ** rng.randrange(4, 13))))
    return numbers


def test_the_quick_validity_check_answers_as_libphonenumber_does():
    """_is_valid_national reads libphonenumber's metadata itself (for speed): it must give
    is_valid_number's answer, and is_valid_number_for_region's for the region read in,
    for every calling code."""
    import random

    import phonenumbers

    rng = random.Random(7)
    compared = 0
    for country_code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for national in _numbers_to_try(country_code, rng):
            number = validators._phone_number(country_code, national)
            assert validators._is_valid_national(
                country_code, national, None
            ) == phonenumbers.is_valid_number(number), (country_code, national)
            region = regions[-1]
            if region != "001":
                expected = phonenumbers.is_valid_number_for_region(
                    number, region
                ) or phonenumbers.is_valid_number(number)
                assert validators._is_valid_national(country_code, national, region) == expected
            compared += 1
    assert compared > 5000
