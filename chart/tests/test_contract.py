"""Each contract type and rule, with good and bad values."""

from decimal import Decimal

import pytest

from chart.contract import CompiledContract, FieldRule
from governance.pipeline.models import DatasetField, FieldType


def rule(name="f", data_type=FieldType.STRING, **options) -> FieldRule:
    if "pattern" in options:
        import re2

        options["pattern"] = re2.compile(options["pattern"])
    if "allowed_values" in options:
        options["allowed_values"] = frozenset(options["allowed_values"])
    return FieldRule(name=name, data_type=data_type, **options)


@pytest.mark.parametrize(
    ("data_type", "value", "typed"),
    [
        (FieldType.STRING, "hello", "hello"),
        (FieldType.STRING, 42, "42"),
        (FieldType.INTEGER, "42", 42),
        (FieldType.INTEGER, " -7 ", -7),
        (FieldType.INTEGER, 12.0, 12),
        (FieldType.DECIMAL, "19.990", "19.990"),
        (FieldType.DECIMAL, 3, "3"),
        (FieldType.BOOLEAN, "Yes", True),
        (FieldType.BOOLEAN, "0", False),
        (FieldType.BOOLEAN, False, False),
        (FieldType.DATE, "2026-02-28", "2026-02-28"),
        (FieldType.DATETIME, "2026-11-26T10:00:00+02:00", "2026-11-26T08:00:00+00:00"),
        (FieldType.DATETIME, "2026-11-26 10:00:00", "2026-11-26T10:00:00+00:00"),
        (FieldType.EMAIL, "Ada@Example.COM", "Ada@example.com"),
        (FieldType.ENUM, " gold ", "gold"),
    ],
)
def test_values_are_coerced_to_their_type(data_type, value, typed):
    options = {"allowed_values": ["gold", "silver"]} if data_type == FieldType.ENUM else {}
    result, reasons = rule(data_type=data_type, **options).check(value)
    assert reasons == []
    assert result == typed


@pytest.mark.parametrize(
    ("data_type", "value", "message"),
    [
        (FieldType.INTEGER, "4.5", "expected an integer"),
        (FieldType.INTEGER, True, "got a boolean"),
        (FieldType.INTEGER, 4.5, "expected an integer"),
        (FieldType.DECIMAL, "abc", "expected a decimal number"),
        (FieldType.DECIMAL, "NaN", "finite"),
        (FieldType.BOOLEAN, "maybe", "expected true/false"),
        (FieldType.DATE, "2026-02-30", "expected a date"),
        (FieldType.DATE, "26/11/2026", "expected a date"),
        (FieldType.DATETIME, "yesterday", "ISO 8601"),
        (FieldType.EMAIL, "not-an-email", "expected an email"),
        (FieldType.STRING, {"nested": 1}, "nested object"),
    ],
)
def test_bad_values_fail_with_a_type_reason(data_type, value, message):
    result, reasons = rule(data_type=data_type).check(value)
    assert result is None
    assert [r.rule for r in reasons] == ["type"]
    assert message in reasons[0].message
    assert reasons[0].field == "f"


def test_required_field():
    for blank in (None, "", "   "):
        _, reasons = rule(required=True).check(blank)
        assert [(r.rule, r.message) for r in reasons] == [("required", "a value is required")]
    assert rule(required=False).check(None) == (None, [])


def test_max_length_allowed_values_pattern_and_range():
    assert rule(max_length=3).check("abcd")[1][0].rule == "max_length"
    reasons = rule(data_type=FieldType.ENUM, allowed_values=["a", "b"]).check("c")[1]
    assert reasons[0].rule == "allowed_values"
    assert "not one of: a, b" in reasons[0].message
    assert rule(pattern=r"[A-Z]{2}\d{3}").check("AB123")[1] == []
    assert rule(pattern=r"[A-Z]{2}\d{3}").check("AB1234")[1][0].rule == "pattern"
    bounded = rule(data_type=FieldType.DECIMAL, minimum=Decimal(0), maximum=Decimal(100))
    assert bounded.check("100")[1] == []
    assert "below the minimum 0" in bounded.check("-1")[1][0].message
    assert "above the maximum 100" in bounded.check("100.5")[1][0].message


def test_value_excerpt_is_short_and_the_message_never_holds_the_value():
    long_value = "x" * 100
    reason = rule(max_length=3).check(long_value)[1][0]
    assert len(reason.value_excerpt) == 40
    for data_type in FieldType.values:
        if data_type in (FieldType.STRING, FieldType.ENUM):
            continue  # any text is a string
        reason = FieldRule(name="f", data_type=data_type).check("123-45-6789 secret")[1][0]
        assert reason.rule == "type", data_type
        assert "123-45-6789" not in reason.message and "secret" not in reason.message
        assert reason.value_excerpt == "123-45-6789 secret"  # protected by the promotion


def test_contract_checks_a_whole_record_and_keeps_extras():
    contract = CompiledContract(
        [
            rule("id", FieldType.INTEGER, required=True),
            rule("email", FieldType.EMAIL),
            rule("tier", FieldType.ENUM, allowed_values=["gold"]),
        ]
    )
    checked = contract.check({"id": "7", "email": "a@b.co", "tier": "gold", "note": "hi"})
    assert checked.passed
    assert checked.data == {"id": 7, "email": "a@b.co", "tier": "gold"}
    assert checked.extras == {"note": "hi"}

    failed = contract.check({"id": "x", "email": "nope", "tier": "bronze"})
    assert not failed.passed
    assert {(r.field, r.rule) for r in failed.reasons} == {
        ("id", "type"),
        ("email", "type"),
        ("tier", "allowed_values"),
    }


def test_a_payload_that_is_not_an_object_fails_with_a_shape_reason():
    checked = CompiledContract([rule("id")]).check(["a", "list"])
    assert [r.rule for r in checked.reasons] == ["shape"]


@pytest.mark.django_db
def test_contract_compiles_from_dataset_fields(dataset):
    DatasetField.objects.create(
        dataset=dataset, name="order_id", data_type="integer", required=True
    )
    DatasetField.objects.create(dataset=dataset, name="code", pattern=r"[A-Z]{3}", position=1)
    contract = CompiledContract.for_dataset(dataset)
    assert [r.name for r in contract.rules] == ["order_id", "code"]
    assert contract.check({"order_id": 1, "code": "ABC"}).passed
    assert not contract.check({"order_id": 1, "code": "abcd"}).passed
