"""Contract files: validated import with located errors, idempotent re-import, export."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.compliance.models import AuditLog
from governance.pipeline.contracts import (
    ContractError,
    export_contract,
    import_contract,
    import_contracts,
    parse_contract_text,
)
from governance.pipeline.models import Dataset, DatasetField

pytestmark = pytest.mark.django_db

EXAMPLE = Path(settings.BASE_DIR) / "examples" / "customers.contract.yaml"

CONTRACT = """
atlas_contract: 1
dataset:
  slug: orders
  name: Orders
  business_key: [order_id]
  event_time_field: ordered_at
  quality_threshold: 0.9
  gate_action: warn
  freshness_target: PT6H
fields:
  - name: order_id
    type: integer
    required: true
  - name: status
    type: enum
    allowed_values: [new, paid, shipped]
  - name: amount
    type: decimal
    minimum: 0
    maximum: 100000.5
  - name: email
    type: email
    classification: confidential
  - name: ordered_at
    type: datetime
"""


def contract(text: str = CONTRACT) -> dict:
    return yaml.safe_load(text)


def errors_of(data) -> list[str]:
    with pytest.raises(ContractError) as caught:
        import_contract(data=data, actor="tests")
    return caught.value.errors


def test_import_creates_the_dataset_and_its_fields():
    result = import_contract(data=contract(), actor="tests", source="orders.yaml")
    dataset = Dataset.objects.get(slug="orders")
    assert result.created and result.dataset == dataset
    assert dataset.business_key == ["order_id"] and dataset.gate_action == "warn"
    assert dataset.freshness_target.total_seconds() == 6 * 3600
    fields = list(dataset.fields.order_by("position"))
    assert [(f.name, f.data_type, f.position) for f in fields] == [
        ("order_id", "integer", 0),
        ("status", "enum", 1),
        ("amount", "decimal", 2),
        ("email", "email", 3),
        ("ordered_at", "datetime", 4),
    ]
    assert fields[1].allowed_values == ["new", "paid", "shipped"]
    assert fields[3].classification.name == "confidential"
    entry = AuditLog.objects.get(object_type="pipeline.dataset", object_id=str(dataset.pk))
    assert entry.action == "create" and "from orders.yaml" in entry.detail
    assert entry.after["fields"][0]["name"] == "order_id"


def test_reimport_is_idempotent_and_audited():
    import_contract(data=contract(), actor="tests")
    dataset = Dataset.objects.get(slug="orders")
    updated_at = dataset.updated_at
    again = import_contract(data=contract(), actor="tests")
    assert not again.changed and again.summary() == "orders: unchanged"
    dataset.refresh_from_db()
    assert dataset.updated_at == updated_at
    assert AuditLog.objects.filter(object_type="pipeline.dataset").count() == 2


def test_reimport_updates_in_place():
    import_contract(data=contract(), actor="tests")
    changed = contract()
    changed["dataset"]["gate_action"] = "fail"
    changed["fields"][1]["allowed_values"].append("refunded")
    del changed["fields"][4]  # ordered_at removed...
    changed["dataset"]["event_time_field"] = ""  # ...so no longer the event time
    changed["fields"].append({"name": "channel", "type": "string"})
    result = import_contract(data=changed, actor="tests")
    assert result.fields_added == ["channel"]
    assert result.fields_changed == ["status"]
    assert result.fields_removed == ["ordered_at"]
    dataset = Dataset.objects.get(slug="orders")
    assert dataset.gate_action == "fail"
    assert Dataset.objects.count() == 1
    assert set(dataset.fields.values_list("name", flat=True)) == {
        "order_id",
        "status",
        "amount",
        "email",
        "channel",
    }
    entry = AuditLog.objects.filter(object_type="pipeline.dataset").latest("at")
    assert entry.action == "update"
    assert entry.before["dataset"]["gate_action"] == "warn"
    assert entry.after["dataset"]["gate_action"] == "fail"


def test_errors_name_their_location_and_nothing_is_written():
    data = contract()
    data["fields"][3]["type"] = "intger"
    data["fields"][1]["classification"] = "secret"
    data["fields"][2]["minimum"] = "lots"
    data["fields"][0]["colour"] = "red"
    data["fields"].append({"name": "order_id", "type": "string"})
    data["dataset"]["business_key"] = ["order_no"]
    data["dataset"]["gate_action"] = "explode"
    data["dataset"]["freshness_target"] = "soon"
    data["dataset"]["quality_threshold"] = 2
    errors = errors_of(data)
    assert (
        "fields[3].type: 'intger' is not one of string, integer, decimal, boolean, date, "
        "datetime, email, enum" in errors
    )
    assert (
        "fields[1].classification: 'secret' is not one of confidential, internal, public, "
        "restricted" in errors
    )
    assert "fields[2].minimum: expected a number, got 'lots'" in errors
    assert any(e.startswith("fields[0].colour: unknown key") for e in errors)
    assert "fields[5].name: 'order_id' is already the name of fields[0]" in errors
    assert "dataset.business_key[0]: 'order_no' is not a field of the contract" in errors
    assert any(e.startswith("dataset.gate_action: 'explode' is not one of") for e in errors)
    assert any(e.startswith("dataset.freshness_target: 'soon' is not a duration") for e in errors)
    assert not Dataset.objects.exists() and not DatasetField.objects.exists()
    assert not AuditLog.objects.filter(object_type="pipeline.dataset").exists()


def test_model_rules_are_checked_with_their_location():
    data = contract()
    data["fields"][1]["allowed_values"] = []  # an enum needs its values
    data["fields"][2]["minimum"] = 10
    data["fields"][2]["maximum"] = 5
    data["fields"][0]["pattern"] = "(a+)+$"  # catastrophic backtracking
    errors = errors_of(data)
    assert "fields[1].allowed_values: An enumeration needs its allowed values." in errors
    assert "fields[2].maximum: The maximum is below the minimum." in errors
    assert any(e.startswith("fields[0].pattern: ") for e in errors)
    data = contract()
    data["dataset"]["quality_threshold"] = 2
    data["dataset"]["schedule"] = "every hour"
    data["dataset"]["slug"] = "not a slug!"
    errors = errors_of(data)
    assert any(e.startswith("dataset.quality_threshold: ") for e in errors)
    assert any(e.startswith("dataset.schedule: A schedule has five fields") for e in errors)
    assert any(e.startswith("dataset.slug: ") for e in errors)


def test_a_country_is_read_written_and_checked_with_its_location():
    data = contract()
    data["dataset"]["country"] = "NL"
    data["fields"][0]["country"] = "BE"
    import_contract(data=data, actor="tests")
    dataset = Dataset.objects.get(slug="orders")
    assert dataset.country == "NL"
    countries = dict(dataset.fields.values_list("name", "country"))
    assert countries.pop("order_id") == "BE"
    assert set(countries.values()) == {""}
    exported = export_contract(dataset)
    assert exported["dataset"]["country"] == "NL"
    assert exported["fields"][0]["country"] == "BE"
    assert "country" not in exported["fields"][1]  # the default, left out

    data["fields"][0]["country"] = "be"
    assert errors_of(data) == ["fields[0].country: Write the country code in capitals: BE."]
    data["fields"][0]["country"] = "BE"
    data["dataset"]["country"] = "UK"
    (error,) = errors_of(data)
    assert error.startswith("dataset.country: 'UK' is not a country code libphonenumber knows")


def test_several_contracts_import_all_or_nothing():
    good = contract()
    bad = yaml.safe_load(CONTRACT.replace("slug: orders", "slug: refunds"))
    bad["fields"][0]["type"] = "whole number"
    with pytest.raises(ContractError) as caught:
        import_contracts(documents=[good, bad], actor="tests")
    assert caught.value.errors[0].startswith("contract 2: fields[0].type:")
    assert not Dataset.objects.exists()


def test_syntax_errors_have_a_line_and_column():
    with pytest.raises(ContractError, match="line 3, column 10: mapping values are not allowed"):
        parse_contract_text("dataset:\n  slug: a\n  name: b: c\n", filename="x.yaml")
    with pytest.raises(ContractError, match="line 1, column 2"):
        parse_contract_text("{nope}", filename="x.json")


def test_export_reads_back_the_same(steward):
    data = contract()
    data["dataset"]["owner"] = steward.username
    import_contract(data=data, actor="tests")
    exported = export_contract(Dataset.objects.get(slug="orders"))
    assert exported["dataset"]["owner"] == "steward"
    assert exported["dataset"]["quality_threshold"] == 0.9
    assert exported["fields"][2] == {
        "name": "amount",
        "type": "decimal",
        "minimum": 0,
        "maximum": 100000.5,
    }
    text = yaml.safe_dump(exported, sort_keys=False)
    assert not import_contract(data=yaml.safe_load(text), actor="tests").changed


def test_import_contract_command_and_the_example(tmp_path):
    call_command("import_contract", str(EXAMPLE))
    dataset = Dataset.objects.get(slug="customers")
    assert dataset.fields.count() == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("type: integer", "type: intger"))
    with pytest.raises(CommandError) as caught:
        call_command("import_contract", str(bad))
    assert "fields[0].type: 'intger' is not one of" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    json_file = tmp_path / "customers.json"
    call_command("export_contract", "customers", "--format", "json", stdout=json_file.open("w"))
    assert "unchanged" in _run("import_contract", str(json_file))


def _run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_contract_without_a_threshold_takes_the_default():
    from decimal import Decimal

    data = contract()
    del data["dataset"]["quality_threshold"]
    import_contract(data=data, actor="tests")
    assert Dataset.objects.get(slug="orders").quality_threshold == Decimal("0.95")
