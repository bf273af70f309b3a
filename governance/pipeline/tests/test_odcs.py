"""Contracts in the Open Data Contract Standard v3: import (detected), export, round trips."""

import copy
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils.dateparse import parse_duration

from governance.compliance.models import AuditLog
from governance.pipeline.contracts import (
    ContractError,
    dump_contracts,
    export_contract,
    import_contract,
    import_contracts,
    parse_contract_text,
    read_contract_file,
)
from governance.pipeline.models import Dataset
from governance.pipeline.odcs import atlas_to_odcs, is_odcs, odcs_to_atlas

pytestmark = pytest.mark.django_db

EXAMPLES = Path(settings.BASE_DIR) / "examples"
ODCS_EXAMPLE = EXAMPLES / "orders.odcs.yaml"
ATLAS_EXAMPLE = EXAMPLES / "customers.contract.yaml"


def odcs_example() -> dict:
    return yaml.safe_load(ODCS_EXAMPLE.read_text(encoding="utf-8"))


def errors_of(document) -> list[str]:
    with pytest.raises(ContractError) as caught:
        import_contract(data=document, actor="tests")
    return caught.value.errors


def test_the_odcs_example_imports_into_a_dataset_with_its_fields():
    (document,) = read_contract_file(ODCS_EXAMPLE)
    assert is_odcs(document)
    result = import_contract(data=document, actor="tests", source="orders.odcs.yaml")
    assert result.created
    orders = Dataset.objects.get(slug="orders")
    assert orders.name == "Orders" and orders.description.startswith("Orders placed")
    assert orders.owner is None  # the team names a steward, no owner
    assert orders.business_key == ["order_id"]  # from primaryKey
    assert orders.event_time_field == "ordered_at" and orders.gate_action == "quarantine"
    assert orders.quality_threshold == Decimal("0.95")
    assert orders.freshness_target.total_seconds() == 2 * 3600
    fields = {f.name: f for f in orders.fields.select_related("classification")}
    assert [(f.name, f.data_type, f.position) for f in orders.fields.order_by("position")] == [
        ("order_id", "integer", 0),
        ("customer_email", "email", 1),
        ("status", "enum", 2),
        ("amount", "decimal", 3),
        ("voucher_code", "string", 4),
        ("ordered_at", "datetime", 5),
    ]
    assert fields["order_id"].required and fields["order_id"].unique
    assert fields["order_id"].minimum == 1
    assert fields["customer_email"].country == "NL"
    assert fields["customer_email"].classification.name == "confidential"
    assert fields["status"].allowed_values == ["new", "paid", "shipped", "cancelled"]
    assert fields["amount"].required  # from its nullValues quality rule
    assert (fields["amount"].minimum, fields["amount"].maximum) == (0, 100000)
    assert fields["voucher_code"].max_length == 12
    assert fields["voucher_code"].pattern == "^[A-Z0-9]{6,12}$"
    assert not fields["voucher_code"].required
    # Importing it again changes nothing.
    assert not import_contract(data=document, actor="tests").changed


def test_an_atlas_contract_round_trips_through_odcs_unchanged(steward):
    (contract,) = read_contract_file(ATLAS_EXAMPLE)
    contract["dataset"].update(owner=steward.username, country="BE", schedule="0 * * * *")
    contract["fields"][0]["country"] = "NL"
    contract["fields"][6]["maximum"] = "1234567890.0123456789"  # not a float
    import_contract(data=contract, actor="tests")
    exported = export_contract(Dataset.objects.get(slug="customers"))

    # As dicts, exactly.
    document = atlas_to_odcs(exported)
    assert odcs_to_atlas(copy.deepcopy(document)).contract == exported

    # Through an ODCS file and the database: the same contract, nothing changed.
    text = dump_contracts([exported], fmt="odcs")
    (read,) = parse_contract_text(text, filename="customers.odcs.yaml")
    assert read["kind"] == "DataContract" and read["id"] == "customers"
    assert not import_contract(data=read, actor="tests").changed
    # Into a new dataset: the same contract under its new slug.
    read["id"] = "customers-copy"
    assert import_contract(data=read, actor="tests").created
    copied = export_contract(Dataset.objects.get(slug="customers-copy"))
    assert copied == {**exported, "dataset": {**exported["dataset"], "slug": "customers-copy"}}
    assert copied["dataset"]["owner"] == steward.username
    assert copied["fields"][6]["maximum"] == "1234567890.0123456789"


def test_an_odcs_file_round_trips_what_atlas_understands_and_unknown_custom_properties():
    original = odcs_example()
    read = odcs_to_atlas(copy.deepcopy(original))
    assert not read.errors
    import_contract(data=copy.deepcopy(original), actor="tests")
    exported = export_contract(Dataset.objects.get(slug="orders"))
    again = atlas_to_odcs(exported, extras=read.extras)

    assert (again["id"], again["name"]) == (original["id"], original["name"])
    assert again["description"]["purpose"] == original["description"]["purpose"]
    assert again["apiVersion"].startswith("v3.") and again["kind"] == "DataContract"
    properties = again["schema"][0]["properties"]
    assert len(properties) == len(original["schema"][0]["properties"])
    understood = (
        "name",
        "logicalType",
        "required",
        "unique",
        "primaryKey",
        "primaryKeyPosition",
        "enum",
        "classification",
        "description",
    )
    # The amount's quality rule (nullValues, mustBe 0) is said by `required` now.
    expected = copy.deepcopy(original["schema"][0]["properties"])
    expected[3]["required"] = True
    for before, after in zip(expected, properties, strict=True):
        for key in understood:
            assert after.get(key) == before.get(key), (before["name"], key)
        assert after.get("logicalTypeOptions") == before.get("logicalTypeOptions"), before["name"]
        assert after.get("customProperties") == before.get("customProperties"), before["name"]
    custom = {item["property"]: item["value"] for item in again["customProperties"]}
    for item in original["customProperties"]:  # Atlas's and the unknown one
        if item["property"] == "atlas.freshness_target":  # the same duration, spelt by Atlas
            assert parse_duration(custom[item["property"]]) == parse_duration(item["value"])
        else:
            assert custom[item["property"]] == item["value"]
    # And read back, the same Atlas contract.
    assert odcs_to_atlas(again).contract == exported


def test_what_atlas_has_no_place_for_is_kept_on_the_dataset_and_exported_again(steward):
    """Imported, then exported from the database (no extras handed over by the caller):
    the document's other sections, its description's other parts and the custom
    properties Atlas does not know come back as they were."""
    original = odcs_example()
    original["description"]["usage"] = "Finance reporting only."
    original["slaProperties"] = [{"property": "latency", "value": 4, "unit": "h"}]
    import_contract(data=copy.deepcopy(original), actor="tests")
    orders = Dataset.objects.get(slug="orders")
    assert orders.odcs_extras["document"]["servers"] == original["servers"]

    out = StringIO()
    call_command("export_contract", "orders", "--format", "odcs", stdout=out)
    (again,) = yaml.safe_load_all(out.getvalue())
    for section in ("version", "status", "domain", "tags", "servers", "slaProperties"):
        assert again[section] == original[section], section
    assert again["description"]["usage"] == "Finance reporting only."
    assert again["description"]["purpose"] == original["description"]["purpose"]
    unknown = [c for c in original["customProperties"] if not c["property"].startswith("atlas.")]
    assert unknown and all(item in again["customProperties"] for item in unknown)
    for before, after in zip(
        original["schema"][0]["properties"], again["schema"][0]["properties"], strict=True
    ):
        assert after.get("customProperties") == before.get("customProperties"), before["name"]

    # An Atlas contract file for the same dataset leaves them be; a new ODCS one replaces them.
    import_contract(data=export_contract(orders), actor="tests")
    orders.refresh_from_db()
    assert orders.odcs_extras["document"]["servers"] == original["servers"]
    slimmer = copy.deepcopy(original)
    del slimmer["servers"], slimmer["slaProperties"]
    import_contract(data=slimmer, actor="tests")
    orders.refresh_from_db()
    assert "servers" not in orders.odcs_extras["document"]
    assert "slaProperties" not in orders.odcs_extras["document"]


def test_invalid_odcs_gets_located_errors_and_nothing_is_written():
    audits = AuditLog.objects.count()
    document = odcs_example()
    document["schema"][0]["properties"][2]["logicalType"] = "strnig"
    document["schema"][0]["properties"][0]["required"] = "sometimes"
    assert errors_of(document) == [
        "schema[0].properties[0].required: Input should be a valid boolean, "
        "unable to interpret input"
    ]
    document["schema"][0]["properties"][0]["required"] = True
    errors = errors_of(document)
    assert errors == [
        "schema[0].properties[2].logicalType: 'strnig' is not one of string, date, "
        "timestamp, time, number, integer, object, array, boolean, map, vector"
    ]

    # The Atlas contract's own checks, told where they are in the ODCS document.
    document = odcs_example()
    document["schema"][0]["properties"][1]["classification"] = "secret"
    document["schema"][0]["properties"][3]["logicalTypeOptions"]["maximum"] = -1
    document["schema"][0]["properties"][5]["logicalType"] = "array"
    document["customProperties"][1]["value"] = "explode"
    errors = errors_of(document)
    assert errors == [
        "schema[0].properties[5].logicalType: 'array' cannot be an Atlas field "
        "(string, integer, number, boolean, date or timestamp)"
    ]
    document["schema"][0]["properties"][5]["logicalType"] = "timestamp"
    errors = errors_of(document)
    assert any(e.startswith("schema[0].properties[1].classification: 'secret'") for e in errors)
    assert "schema[0].properties[3].logicalTypeOptions.maximum: " in "\n".join(errors)
    assert any(e.startswith("customProperties[1].value: 'explode' is not one of") for e in errors)
    # The dataset's own model checks run once the rest is right.
    document = odcs_example()
    document["id"] = "Not a slug!"
    assert [e.split(": ")[0] for e in errors_of(document)] == ["id"]

    # An unknown Atlas property, a second schema object, a key ODCS does not have.
    document = odcs_example()
    document["customProperties"].append({"property": "atlas.gate", "value": "warn"})
    assert errors_of(document)[0].startswith("customProperties[5].property: 'atlas.gate'")
    document = odcs_example()
    document["schema"].append({"name": "returns"})
    assert errors_of(document) == [
        "schema: an Atlas dataset is one schema object, this document has 2"
    ]
    document = odcs_example()
    document["apiVersion"] = "v2.2.2"
    document["owner"] = "alice"
    errors = errors_of(document)
    assert errors[0].startswith("apiVersion: 'v2.2.2' is not ODCS v3")
    assert "owner: Extra inputs are not permitted" in errors

    # With several contracts in one import, located per contract, and all or nothing.
    document = odcs_example()
    document["schema"][0]["properties"][4]["logicalTypeOptions"]["pattern"] = "("
    with pytest.raises(ContractError) as caught:
        import_contracts(documents=[read_contract_file(ATLAS_EXAMPLE)[0], document], actor="t")
    assert caught.value.errors[0].startswith(
        "contract 2: schema[0].properties[4].logicalTypeOptions.pattern: "
    )
    assert not Dataset.objects.exists()
    assert AuditLog.objects.count() == audits


def test_the_business_key_and_primary_keys_must_agree():
    document = odcs_example()
    document["customProperties"].append({"property": "atlas.business_key", "value": ["amount"]})
    assert errors_of(document) == [
        "customProperties[5].value: ['amount'] differs from the primaryKey properties ['order_id']"
    ]


def test_the_commands_read_and_write_odcs(tmp_path, steward):
    out = StringIO()
    call_command("import_contract", str(ODCS_EXAMPLE), stdout=out)
    assert "orders: created with 6 fields" in out.getvalue()

    out = StringIO()
    call_command("export_contract", "orders", "--format", "odcs", stdout=out)
    (document,) = list(yaml.safe_load_all(out.getvalue()))
    assert document["kind"] == "DataContract" and document["id"] == "orders"
    assert [p["name"] for p in document["schema"][0]["properties"]][:2] == [
        "order_id",
        "customer_email",
    ]
    # The default format is still Atlas's own.
    out = StringIO()
    call_command("export_contract", "orders", stdout=out)
    assert yaml.safe_load(out.getvalue())["atlas_contract"] == 1

    # The written file imports back unchanged; a broken one says where, nothing written.
    written = tmp_path / "orders.yaml"
    orders = Dataset.objects.get(slug="orders")
    written.write_text(
        dump_contracts([export_contract(orders)], fmt="odcs", odcs_extras=[orders.odcs_extras])
    )
    out = StringIO()
    call_command("import_contract", str(written), stdout=out)
    assert "orders: unchanged" in out.getvalue()
    written.write_text(
        written.read_text().replace(
            "physicalType: enum", "physicalType: enum\n    logicalType: set", 1
        )
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_contract", str(written), stdout=StringIO())
    assert "schema[0].properties[2]" in str(caught.value)


def test_the_admin_imports_and_exports_odcs(client, steward):
    client.force_login(steward)
    url = reverse("admin:pipeline_dataset_import_contract")
    upload = SimpleUploadedFile("orders.odcs.yaml", ODCS_EXAMPLE.read_bytes())
    page = client.post(url, {"file": upload})
    assert "orders: created with 6 fields" in page.content.decode()
    assert not Dataset.objects.filter(slug="orders").exists()  # a preview
    client.post(
        url,
        {"text": page.context["text"], "name": "orders.odcs.yaml", "confirm": "import"},
        follow=True,
    )
    orders = Dataset.objects.get(slug="orders")

    response = client.post(
        reverse("admin:pipeline_dataset_changelist"),
        {"action": "export_contracts_odcs", "_selected_action": [orders.pk]},
    )
    assert response["Content-Disposition"] == 'attachment; filename="orders.odcs.yaml"'
    document = yaml.safe_load(response.content)
    assert odcs_to_atlas(document).contract == export_contract(orders)
