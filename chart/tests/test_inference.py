"""A contract inferred from a sample file (chart.inference), and saved through the import."""

import csv
import gzip
import io
import json
from decimal import Decimal

import pytest

from chart import inference
from chart.contract import COERCERS, CoercionError
from chart.inference import (
    SampleError,
    contract_file,
    create_dataset_from_contract,
    infer_contract,
)
from governance.compliance.models import AuditLog
from governance.pipeline.contracts import ContractError, import_contract, parse_contract_text
from governance.pipeline.models import Dataset, FieldType

pytestmark = pytest.mark.django_db

# 20 customers as an export gives them: blanks (some only spaces), a trailing space in a
# tier, amounts with and without decimals, a date column with gaps, booleans as yes/no,
# prices written with a decimal comma, one weight that is not a number.
HEADER = (
    "customer_id,email,tier,amount,signup,last_seen,active,ssn,score,price_eu,weight,"
    "city,comment,nothing\n"
)
TIERS = ["gold", "silver", "bronze", "silver ", "gold"]
CITIES = [
    "Amsterdam",
    "Rotterdam",
    "Utrecht",
    "Eindhoven",
    "Groningen",
    "Tilburg",
    "Almere",
    "Breda",
    "Nijmegen",
    "Haarlem",
    "Arnhem",
    "Zaanstad",
    "Amersfoort",
    "Apeldoorn",
    "Enschede",
    "Leiden",
    "Maastricht",
    "Dordrecht",
    "Zwolle",
    "Delft",
]
SSNS = [f"{100 + n:03d}-{10 + n:02d}-{1000 + 37 * n:04d}" for n in range(20)]


def messy_csv() -> bytes:
    lines = [HEADER]
    for n in range(20):
        amount = "" if n == 4 else ("  " if n == 9 else f"{n * 7.25 - 20:.2f}" if n % 3 else f"{n}")
        signup = "" if n % 5 == 0 else f"2024-0{1 + n % 9}-{10 + n}"
        seen = f"2024-03-{10 + n}T0{n % 10}:15:00+01:00" if n % 2 else f"2024-03-{10 + n} 08:00"
        active = ["yes", "no", "true", "0", "Y"][n % 5]
        weight = "n/a" if n == 7 else f"{1.5 + n}"
        comment = f'"said ""hi"", call {n}"' if n % 4 == 0 else ""
        lines.append(
            f"{1001 + n},user{n}@example.com,{TIERS[n % 5]},{amount},{signup},{seen},"
            f'{active},{SSNS[n]},{1 + n % 5},"{n},50",{weight},{CITIES[n]},{comment},\n'
        )
    return "".join(lines).encode()


def propose(content: bytes, filename: str = "customers.csv", **kwargs):
    return infer_contract(
        file=io.BytesIO(content), filename=filename, slug="customers", name="Customers", **kwargs
    )


def fields_of(proposal) -> dict:
    return {f.name: f for f in proposal.fields}


def test_types_required_unique_and_ranges_on_a_messy_sample():
    proposal = propose(messy_csv())
    fields = fields_of(proposal)
    assert list(fields) == HEADER.strip().split(",")
    assert proposal.records == 20 and proposal.format == "csv" and not proposal.more
    types = {name: f.data_type for name, f in fields.items()}
    assert types == {
        "customer_id": FieldType.INTEGER,
        "email": FieldType.EMAIL,
        "tier": FieldType.ENUM,
        "amount": FieldType.DECIMAL,
        "signup": FieldType.DATE,
        "last_seen": FieldType.DATETIME,
        "active": FieldType.BOOLEAN,
        "ssn": FieldType.STRING,
        "score": FieldType.INTEGER,
        "price_eu": FieldType.STRING,  # a decimal comma is not a number to the contract
        "weight": FieldType.STRING,  # one "n/a" among numbers
        "city": FieldType.STRING,
        "comment": FieldType.STRING,
        "nothing": FieldType.STRING,
    }
    customer_id = fields["customer_id"]
    assert customer_id.required and customer_id.unique
    assert (customer_id.minimum, customer_id.maximum) == (Decimal(1001), Decimal(1020))
    assert customer_id.non_empty == customer_id.distinct == 20

    amount = fields["amount"]
    assert amount.non_empty == 18  # an empty value and one of spaces
    assert not amount.required
    assert amount.minimum == Decimal("-12.75") and amount.maximum == Decimal("117.75")

    score = fields["score"]  # five values repeated: a number keeps its type and range
    assert (score.minimum, score.maximum) == (Decimal(1), Decimal(5))
    assert not score.unique and score.distinct == 5 and not score.allowed_values

    assert fields["signup"].non_empty == 16 and not fields["signup"].required
    assert fields["last_seen"].required and fields["active"].required
    assert not fields["active"].unique  # booleans are never proposed unique

    city = fields["city"]  # twenty different names: text, unique, its longest length
    assert city.unique and city.required and city.max_length == len("Amersfoort")
    assert city.allowed_values == [] and city.minimum is None

    weight = fields["weight"]
    assert any("all values but 1 of 20 are numbers" in note for note in weight.notes)
    assert weight.max_length == 4

    nothing = fields["nothing"]
    assert nothing.non_empty == 0 and not nothing.required and not nothing.unique
    assert nothing.notes == ["no value in the sample: typed as text"]


def test_each_proposed_type_passes_every_value_and_no_narrower_one_does():
    proposal = propose(messy_csv())
    rows = list(csv.DictReader(io.StringIO(messy_csv().decode())))
    order = [*inference.INFERRED_TYPES, FieldType.STRING]
    for proposed in proposal.fields:
        values = [row[proposed.name] for row in rows if row[proposed.name].strip()]
        chosen = FieldType.STRING if proposed.data_type == FieldType.ENUM else proposed.data_type
        for value in values:
            COERCERS[proposed.data_type](value)  # raises if one did not pass
        for narrower in order[: order.index(chosen)]:
            failures = 0
            for value in values:
                try:
                    COERCERS[narrower](value)
                except CoercionError:
                    failures += 1
            assert failures or not values, (proposed.name, narrower)


def test_a_text_column_of_few_repeated_values_is_an_enumeration():
    proposal = propose(messy_csv())
    tier = fields_of(proposal)["tier"]
    # "silver " is trimmed as the contract's enumeration reads it.
    assert tier.data_type == FieldType.ENUM
    assert tier.allowed_values == ["bronze", "gold", "silver"] and tier.distinct == 3
    assert tier.required and not tier.unique and tier.max_length is None

    # The same values once each are not an enumeration: too few records to tell.
    rows = "code\n" + "".join(f"c{n}\n" for n in range(12))
    code = fields_of(propose(rows.encode()))["code"]
    assert code.data_type == FieldType.STRING and code.unique and code.allowed_values == []

    # More than twenty distinct values, however often repeated: text.
    rows = "code\n" + "".join(f"c{n % 21}\n" for n in range(84))
    assert fields_of(propose(rows.encode()))["code"].data_type == FieldType.STRING


def test_pii_columns_get_a_suggested_level_and_neither_values_nor_ranges():
    proposal = propose(messy_csv())
    fields = fields_of(proposal)
    email, ssn = fields["email"], fields["ssn"]
    assert email.pii_types == {"email": 20} and email.values_with_pii == 20
    assert email.classification == "confidential"  # the email pattern's level
    assert ssn.pii_types == {"us_ssn": 20} and ssn.classification == "restricted"
    for proposed in (email, ssn):
        assert proposed.allowed_values == []
        assert proposed.minimum is None and proposed.maximum is None
        assert proposed.max_length is None
        assert any("would put personal values into the contract" in n for n in proposed.notes)
        assert proposed.unique and proposed.required
    # Examples are masked excerpts naming their type; a restricted column's come without
    # the words around them.
    assert email.examples[0] == {"pii_type": "email", "excerpt": "u***@example.com"}
    assert all("*" in example["excerpt"] for example in ssn.examples)
    # No value of a flagged column appears anywhere in what the page is given.
    evidence = json.dumps([f.evidence() for f in proposal.fields])
    for n in range(20):
        assert f"user{n}@example.com" not in evidence and SSNS[n] not in evidence
        assert SSNS[n] not in json.dumps(proposal.contract())
    assert "user1@example.com" not in json.dumps(proposal.contract())

    # Columns without PII keep their proposal and get no level.
    comment = fields["comment"]  # 'said "hi", call 4': quotes kept, no PII
    assert comment.values_with_pii == 0 and comment.classification is None
    assert comment.non_empty == 5 and comment.max_length == len('said "hi", call 16')
    assert fields["city"].classification is None and fields["city"].pii_types == {}


def test_pii_in_a_few_values_withholds_values_but_suggests_no_level():
    rows = ["channel,contact"] + [f"web,ok{n}" for n in range(39)] + ["web,mail ann@example.org"]
    fields = fields_of(propose(("\n".join(rows) + "\n").encode()))
    contact = fields["contact"]
    assert contact.values_with_pii == 1 and contact.pii_types == {"email": 1}
    assert contact.classification is None  # 1 in 40 is under 5%
    assert contact.max_length is None and contact.allowed_values == []
    assert any("no level suggested" in note for note in contact.notes)
    assert contact.examples == [{"pii_type": "email", "excerpt": "mail a***@example.org"}]
    # The other column is a one-value enumeration.
    assert fields["channel"].data_type == FieldType.ENUM
    assert fields["channel"].allowed_values == ["web"]


def test_json_lines_and_json_arrays_read_their_own_types():
    records = [
        {"id": 1, "price": 9.5, "paid": True, "tags": ["a"], "when": "2024-05-01"},
        {"id": 2, "price": 10, "paid": False, "when": "2024-05-02T10:00:00Z"},
        {"id": 3, "price": None, "paid": True, "tags": ["b", "c"], "extra": "x"},
    ]
    lines = "\n".join(json.dumps(r) for r in records).encode()
    for content, filename in (
        (lines, "orders.jsonl"),
        (json.dumps(records).encode(), "orders.json"),
        (gzip.compress(lines), "orders.jsonl.gz"),
    ):
        proposal = propose(content, filename)
        fields = fields_of(proposal)
        assert list(fields) == ["id", "paid", "price", "tags", "when", "extra"], filename
        assert fields["id"].data_type == FieldType.INTEGER and fields["id"].required
        assert fields["paid"].data_type == FieldType.BOOLEAN
        assert fields["price"].data_type == FieldType.DECIMAL and not fields["price"].required
        assert (fields["price"].minimum, fields["price"].maximum) == (Decimal("9.5"), Decimal(10))
        # A date and a datetime: only datetime takes both.
        assert fields["when"].data_type == FieldType.DATETIME
        tags = fields["tags"]
        assert tags.data_type == FieldType.STRING and tags.non_empty == 2
        assert any("nested objects or lists" in note for note in tags.notes)
        assert not fields["extra"].required and fields["extra"].non_empty == 1


def test_only_the_first_records_are_read(monkeypatch):
    monkeypatch.setattr(inference, "SAMPLE_MAX_RECORDS", 5)
    rows = "n\n" + "".join(f"{n}\n" for n in range(1, 9)) + "not a number\n"
    proposal = propose(rows.encode())
    assert proposal.records == 5 and proposal.more
    n = fields_of(proposal)["n"]
    assert n.data_type == FieldType.INTEGER and n.maximum == Decimal(5)


def test_bounds_hold_every_value_at_the_contracts_scale():
    rows = "ratio\n0.123456789012345\n0.5\n-0.000000000011\n"
    ratio = fields_of(propose(rows.encode()))["ratio"]
    assert ratio.minimum == Decimal("-0.0000000001") and ratio.maximum == Decimal("0.5")
    assert ratio.minimum <= Decimal("-0.000000000011")
    huge = fields_of(propose(b"big\n1\n100000000000000000000000\n"))["big"]
    assert huge.data_type == FieldType.INTEGER and huge.minimum is None
    assert any("bounds" in note for note in huge.notes)


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"", "a.csv", "the file is empty"),
        (b"id,name\n", "a.csv", "the file holds a header row but no records"),
        (b"a;b\n1;2\n", "a.txt", "cannot tell the format of 'a.txt'"),
        (b"id,id,name\n1,2,x\n", "a.csv", "the header names these columns more than once: id"),
        (b"id,first name\n1,x\n", "a.csv", "line 1, column 2: 'first name' is not a valid field"),
        (b"id,,x\n1,2,3\n", "a.csv", "the header's column 2 has no name"),
        (
            b"id,name\n1,a\n2\n3,c,d\n",
            "a.csv",
            "line 3: expected 2 fields as in the header, found 1",
        ),
        (b'{"id": 1}\n{"id": 2,\n', "a.jsonl", "line 2: invalid JSON"),
        (b'[{"id": 1}, "x"]', "a.json", "element 2: expected a JSON object, found a string"),
        (b'{"id": 1, "id": 2}\n', "a.jsonl", "line 1: the key 'id' is given more than once"),
        (b'{"e-mail": "x"}\n{"id": 3}\n', "a.jsonl", "line 1: 'e-mail' is not a valid field"),
        (b"\n\n", "a.jsonl", "the file is empty"),
        (b"{}\n{}\n", "a.jsonl", "the records name no fields"),
        (b"\x1f\x8bnot gzip at all", "a.csv.gz", "this is not valid gzip data"),
        (gzip.compress(b"id\n1\n")[:-6], "a.csv.gz", "the gzip data ends too early"),
    ],
)
def test_a_file_that_cannot_be_a_sample_is_refused_saying_what_and_where(
    content, filename, expected
):
    with pytest.raises(SampleError) as refused:
        propose(content, filename)
    assert any(expected in error for error in refused.value.errors), refused.value.errors
    assert not Dataset.objects.exists()


def test_errors_name_no_value_and_are_summarised(monkeypatch):
    # A header-less file: explore's message quotes the line; this one does not.
    with pytest.raises(SampleError) as refused:
        propose(b"1001,ann@example.com\n1002,bob@example.com\n")
    assert refused.value.errors == [
        "line 1 looks like data, not a header naming the columns: is the header row missing?"
    ]
    bad = "id,name\n" + "".join(f"{n}\n" for n in range(30))
    with pytest.raises(SampleError) as refused:
        propose(bad.encode())
    assert len(refused.value.errors) == inference.ERRORS_SHOWN + 1
    assert refused.value.errors[-1] == "… and 10 more"


def test_a_sample_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(inference, "SAMPLE_MAX_BYTES", 1024)
    content = ("n\n" + "".join(f"{n}\n" for n in range(400))).encode()
    with pytest.raises(SampleError) as refused:
        propose(content)
    assert "the file is larger than" in refused.value.errors[0]
    with pytest.raises(SampleError) as refused:
        propose(gzip.compress(content), "a.csv.gz")  # small compressed, too large inside
    assert "once decompressed" in refused.value.errors[0]


# --- Saving through the contract import ----------------------------------------------------


def test_saving_creates_the_dataset_through_the_contract_import(steward):
    proposal = propose(messy_csv())
    audits = AuditLog.objects.count()
    result = create_dataset_from_contract(
        document=proposal.contract(), actor=steward, source="a sample file (customers.csv)"
    )
    assert result.created
    dataset = Dataset.objects.get(slug="customers")
    assert dataset.name == "Customers"
    stored = {f.name: f for f in dataset.fields.select_related("classification")}
    assert list(stored) == [f.name for f in proposal.fields]
    assert stored["tier"].allowed_values == ["bronze", "gold", "silver"]
    assert stored["customer_id"].unique and stored["customer_id"].minimum == 1001
    assert stored["ssn"].classification.name == "restricted"
    assert stored["email"].classification.name == "confidential"
    # The import's own audit entry, and the classifications' by level name.
    entry = AuditLog.objects.filter(object_type="pipeline.dataset", object_id=str(dataset.pk))
    assert entry.get().detail.startswith(
        "contract imported from a sample file (customers.csv): customers: created"
    )
    assert AuditLog.objects.count() > audits + 1


def test_an_edited_proposal_with_errors_is_refused_with_their_places(steward):
    document = propose(messy_csv()).contract()
    document["fields"][3]["minimum"] = "ten"
    document["fields"][2]["type"] = "intger"
    with pytest.raises(ContractError) as refused:
        create_dataset_from_contract(document=document, actor=steward)
    assert "fields[3].minimum: expected a number, got 'ten'" in refused.value.errors
    assert any(e.startswith("fields[2].type: 'intger' is not one of") for e in refused.value.errors)
    assert not Dataset.objects.exists()


def test_saving_never_replaces_an_existing_dataset(steward, dataset):
    document = propose(messy_csv()).contract()
    document["dataset"]["slug"] = dataset.slug
    audits = AuditLog.objects.count()
    with pytest.raises(ContractError) as refused:
        create_dataset_from_contract(document=document, actor=steward)
    assert refused.value.errors[0].startswith("dataset.slug: 'orders' is already a dataset")
    assert not dataset.fields.exists() and AuditLog.objects.count() == audits


def test_the_contract_file_is_the_export_of_what_saving_creates(steward):
    proposal = propose(messy_csv())
    audits = AuditLog.objects.count()
    text = contract_file(document=proposal.contract(), actor=steward)
    assert not Dataset.objects.exists() and AuditLog.objects.count() == audits
    [document] = parse_contract_text(text, filename="customers.contract.yaml")
    assert document["dataset"]["slug"] == "customers"
    tier = next(f for f in document["fields"] if f["name"] == "tier")
    assert tier == {
        "name": "tier",
        "type": "enum",
        "required": True,
        "allowed_values": ["bronze", "gold", "silver"],
    }
    amount = next(f for f in document["fields"] if f["name"] == "amount")
    assert amount["minimum"] == -12.75 and amount["maximum"] == 117.75
    # The file imports as it is.
    assert import_contract(data=document, actor=steward).created
    assert Dataset.objects.get(slug="customers").fields.count() == len(proposal.fields)


def test_excerpts_of_a_column_to_be_encrypted_leave_out_the_words_around():
    rows = "memo\n" + "".join(f"paid by card 4111 1111 1111 1111 on day {n}\n" for n in range(6))
    memo = fields_of(propose(rows.encode()))["memo"]
    assert memo.pii_types == {"payment_card": 6} and memo.classification == "restricted"
    assert memo.examples and all(
        example == {"pii_type": "payment_card", "excerpt": "…**** **** **** 1111…"}
        for example in memo.examples
    )
