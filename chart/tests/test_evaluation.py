"""Judging in chunks: the same verdicts as one record at a time, on worker processes too."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from chart.contract import CoercionError, CompiledContract, FieldRule, to_email
from chart.evaluation import FieldProtection, RecordEvaluator, Verdict, from_json, to_json
from chart.models import ChartRecord, QuarantinedRecord
from chart.rulebook import RuleBook
from chart.services import promote_to_chart
from governance.compliance.keys import Keyring
from governance.compliance.pii.scanner import shipped_patterns
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import FieldType
from governance.quality.models import QualityRule, RuleKind
from governance.quality.rules import RuleFailure


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "Ada.Lovelace+news@Mail.Example.CO.UK",
        "a_b%c-d@x-y.example.org",
        "x@localhost",
        '"quoted local"@example.com',
        "u@[127.0.0.1]",
        "a@exämple.de",
        "a..b@example.com",
        ".a@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@example.c",
        "a@example.c0m",
        "a@b@example.com",
        "a@example.com\n",
        "a@" + "x" * 64 + ".com",
        "a" * 310 + "@example.com",
        "not-an-email",
    ],
)
def test_the_plain_address_shortcut_accepts_what_django_accepts(address):
    try:
        validate_email(address.strip())
        django_accepts = True
    except ValidationError:
        django_accepts = False
    try:
        to_email(address)
        accepted = True
    except CoercionError:
        accepted = False
    assert accepted == django_accepts


@pytest.mark.parametrize(
    "address",
    [
        "kofi.garcía1@example.org",
        "ü@exämple.de",
        "José.Müller@Beispiel.DE",
        "δοκιμή@παράδειγμα.δοκιμή",
        "用户@例子.广告",
    ],
)
def test_an_address_with_letters_beyond_ascii_in_its_local_part_is_an_email(address):
    # RFC 6531: Django's validator alone refuses every one of these.
    with pytest.raises(ValidationError):
        validate_email(address)
    local, _, domain = address.rpartition("@")
    assert to_email(address) == f"{local}@{domain.lower()}"


@pytest.mark.parametrize(
    "address",
    [
        "garcía @example.org",  # a space
        "garc\u00eda\u00a0x@example.org",  # a no-break space
        "a\u200bb@example.org",  # a zero-width space
        "a\u0085b@example.org",  # a control character
        "garcía..x@example.org",
        "garcía@",
        "garcía@example",
    ],
)
def test_an_address_beyond_ascii_still_fails_what_it_should(address):
    with pytest.raises(CoercionError):
        to_email(address)


@pytest.mark.parametrize(
    "text",
    [
        '{"id": 123456789012345678901234567890}',
        '{"nested": [1, {"id": -99999999999999999999}]}',
        '{"id": 18446744073709551615, "x": 1.5}',
        '{"amount": NaN, "other": Infinity}',
        '[1e400, "\\ud800"]',
        '{"name": "Zoë \\u00e9", "ok": true, "none": null}',
    ],
)
def test_payloads_are_read_exactly_as_the_standard_library_reads_them(text):
    read = from_json(text)
    expected = json.loads(text)
    assert repr(read) == repr(expected)  # an int stays an int, digit for digit


@pytest.mark.parametrize(
    "value",
    [
        {"id": 2**70, "name": "Zoë"},
        {"text": "lone \ud800 surrogate"},
        {1: "a key that is a number"},
        {"list": [1, "two", None, True], "nested": {"a": "é"}},
    ],
)
def test_stored_json_is_the_compact_text_the_standard_library_writes(value):
    assert to_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def evaluator() -> RecordEvaluator:
    contract = CompiledContract(
        [
            FieldRule(name="id", data_type=FieldType.INTEGER, required=True),
            FieldRule(name="email", data_type=FieldType.EMAIL),
            FieldRule(name="ip", data_type=FieldType.STRING),
            FieldRule(name="notes", data_type=FieldType.STRING),
        ]
    )
    return RecordEvaluator(
        dataset_id=1,
        contract=contract,
        record_rules=[],
        patterns=shipped_patterns(),
        protections={
            "id": FieldProtection("id"),
            "email": FieldProtection("email", "confidential", 30, masking="full"),
            "ip": FieldProtection("ip", "internal", 20, masking="partial"),
            "notes": FieldProtection("notes"),
        },
        business_key=["id"],
        keyring=Keyring.parse("k:" + base64.b64encode(b"K" * 32).decode()),
        tokens=TokenKeyring.parse("t:" + base64.b64encode(b"T" * 32).decode()),
        unique_fields=["notes"],
    )


ROWS = [
    {"id": "1", "email": "ada@example.com", "ip": "10.1.2.3", "notes": "call me"},
    {"id": "2", "email": "bob@example.org", "notes": "card 4111 1111 1111 1111", "x": "a@b.co"},
    {"id": "x", "email": "nope", "ip": "::1", "notes": None},
    ["not", "an", "object"],
]


def test_judging_a_chunk_gives_what_evaluating_each_record_gives():
    judge = evaluator()
    rows = [(n, json.dumps(payload), "") for n, payload in enumerate(ROWS, start=1)]
    rows.append((len(rows) + 1, None, "Expecting value"))
    judged = judge.judge(rows)
    one_by_one = [
        judge.evaluate(raw_id, None if text is None else json.loads(text), error)
        for raw_id, text, error in rows
    ]
    assert [v.raw_id for v in judged.verdicts] == [raw_id for raw_id, _, _ in rows]
    for verdict, outcome in zip(judged.verdicts, one_by_one, strict=True):
        assert verdict.business_key == outcome.business_key
        assert verdict.data == to_json(outcome.data)
        assert verdict.extras == (to_json(outcome.extras) if outcome.extras else "{}")
        assert verdict.failures == outcome.failures
        assert verdict.findings == outcome.findings
        assert verdict.holds_back == outcome.holds_back
    assert sum(judged.expected_pii.values()) == sum(len(o.expected_pii) for o in one_by_one)
    first, second = judged.verdicts[0], judged.verdicts[1]
    # Typed values: masking is for readers, not for what chart keeps.
    assert json.loads(first.data) == {
        "id": 1,
        "email": "ada@example.com",
        "ip": "10.1.2.3",
        "notes": "call me",
    }
    # PII nobody classified for: replaced by its type, the original sealed, a token kept.
    assert json.loads(second.data)["notes"] == "card <payment_card>"
    assert json.loads(second.extras) == {"x": "<email>"}
    assert set(json.loads(second.sealed)) == {"data", "extras"}
    assert "4111" not in second.sealed and "a@b.co" not in second.sealed
    assert second.unique_values == {"notes": json.loads(second.tokens)["notes"]}
    assert second.unique_values["notes"] == evaluator().token_keyring.token(
        "card 4111 1111 1111 1111"
    )


def test_a_judged_chunk_survives_pickling_between_processes():
    import pickle

    judged = evaluator().judge([(1, json.dumps(ROWS[1]), ""), (2, None, "bad line")])
    copy = pickle.loads(pickle.dumps(judged))  # noqa: S301 (our own bytes, as the pool sends)
    assert copy == judged
    assert all(isinstance(verdict, Verdict) for verdict in copy.verdicts)


def rule(pk, field_name, kind) -> QualityRule:
    return QualityRule(pk=pk, field_name=field_name, kind=kind)


def verdict(raw_id, *failures) -> Verdict:
    return Verdict(raw_id, str(raw_id), "{}", "{}", "{}", "{}", list(failures), [], {})


def test_tallies_count_failures_and_judged_records_that_passed():
    book = RuleBook(
        [
            rule(1, "tier", RuleKind.ALLOWED_VALUES),
            rule(2, "id", RuleKind.TYPE),
            rule(3, "", RuleKind.UNIQUE),
        ]
    )
    tier = RuleFailure("tier", RuleKind.ALLOWED_VALUES, "not one of: gold", "bronze")
    verdicts = [
        verdict(1),
        verdict(2, tier),
        verdict(3, tier, RuleFailure("id", RuleKind.TYPE, "expected an integer")),
        verdict(4, RuleFailure("", "parse", "the line could not be parsed")),  # never judged
        verdict(5, RuleFailure("notes", RuleKind.NOT_NULL, "a value is required")),  # no such rule
    ]
    tallies = {t.rule.pk: t for t in book.tally(verdicts, duplicate_keys=1)}
    assert (tallies[1].passed, tallies[1].failed) == (2, 2)
    assert [e["raw_record"] for e in tallies[1].examples] == [2, 3]
    assert (tallies[2].passed, tallies[2].failed) == (3, 1)
    assert (tallies[3].passed, tallies[3].failed) == (3, 1)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_chunks_judged_on_worker_processes_are_stored_alike(customers, land, monkeypatch, workers):
    monkeypatch.setenv("ATLAS_PROMOTION_WORKERS", workers)
    good = {"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "1", "ssn": ""}
    rows = [{**good, "id": str(n % 7 + 1), "amount": str(n)} for n in range(20)]
    rows[5] = {**good, "tier": "bronze"}
    rows[11] = "{broken"
    land(customers, rows)
    run = promote_to_chart(dataset=customers, triggered_by="test", chunk_size=4)
    assert (run.rows_in, run.rows_promoted, run.rows_quarantined) == (20, 18, 2)
    current = ChartRecord.objects.filter(dataset=customers, is_current=True)
    assert current.count() == 7  # one per business key, the latest line of each
    assert sorted(int(r.data["amount"]) for r in current) == [13, 14, 15, 16, 17, 18, 19]
    assert run.detail["superseded"] == 11
    assert QuarantinedRecord.objects.filter(run=run).count() == 2
