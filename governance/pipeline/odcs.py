"""Dataset contracts in the Open Data Contract Standard (ODCS) v3, beside Atlas's own format.

`odcs_to_atlas` turns an ODCS v3 document into the contract dict that
`contracts.validate_contract` reads (and `export_contract` writes); `atlas_to_odcs` does
the reverse. `contracts.validate_contract` recognises an ODCS document by itself
(`kind: DataContract`, or an `apiVersion` key), so `manage.py import_contract`, the
admin's *Import a contract* and `import_contract(s)` read ODCS files unchanged; errors are
located in the ODCS document (`schema[0].properties[2].logicalType: ...`). Export:
`manage.py export_contract <slug> --format odcs`, and the dataset list's ODCS action.

What maps to what (the Atlas key on the left):

    dataset.slug              id
    dataset.name              name
    dataset.description       description.purpose
    dataset.owner             team.members[] with role "owner" (username); a `team` without
                              one: no owner; no `team`: the owner is not given
    dataset.business_key      customProperties atlas.business_key; without it, the
                              properties with primaryKey: true, by primaryKeyPosition
                              (both are written; when both are read they must agree)
    other dataset keys        customProperties atlas.<key> (is_active, event_time_field,
                              quality_threshold, gate_action, schedule, auto_promote,
                              freshness_target, country), values as in an Atlas file
    fields                    schema[0].properties (exactly one schema object)
    fields[].name             name
    fields[].type             logicalType (string, integer, number, boolean, date,
                              timestamp) with physicalType holding the Atlas type (string,
                              integer, decimal, boolean, date, datetime, email, enum).
                              Read: the physicalType when it is an Atlas type that fits the
                              logicalType; else from the logicalType: number -> decimal,
                              timestamp -> datetime, string with format email -> email,
                              string with enum -> enum. time/object/array/map/vector: an
                              error (Atlas fields are scalars).
    fields[].required/unique  required / unique; read also from a property's library
                              quality rules with mustBe: 0 (nullValues -> required,
                              duplicateValues -> unique, invalidValues with
                              arguments.validValues / arguments.pattern -> allowed_values /
                              pattern) when the property does not say it directly
    fields[].max_length       logicalTypeOptions.maxLength
    fields[].pattern          logicalTypeOptions.pattern
    fields[].minimum/maximum  logicalTypeOptions.minimum / maximum
    fields[].allowed_values   enum[].value
    fields[].classification   classification (a compliance.ClassificationLevel name)
    fields[].description      description
    fields[].country          the property's customProperties atlas.country

What round-trips:
- Atlas -> ODCS -> Atlas: exactly, for a contract as `export_contract` writes it
  (`odcs_to_atlas(atlas_to_odcs(c)).contract == c`), hence through the database too:
  export -> import -> export gives the same contract.
- ODCS -> Atlas -> ODCS: the keys listed above, and the customProperties Atlas does not
  know (the document's and each property's, in their order), which `odcs_to_atlas`
  returns in `OdcsContract.extras` and `atlas_to_odcs(..., extras=)` puts back; so are
  the document's sections listed in KEPT_SECTIONS and its description's other parts
  (usage, limitations...). An import keeps them on the dataset (`Dataset.odcs_extras`),
  so a document imported and exported again from the dataset gives them back.
  Kept in meaning, spelt as Atlas writes them: atlas.* values (e.g. freshness_target
  PT2H comes back P0DT02H00M00S), and a quality rule read as
  required/unique/allowed_values/pattern comes back as that key, not as the rule.
  Not kept at all: the rest of ODCS that Atlas has no place for (team members other
  than the owner, the schema object's own name, description and customProperties, a
  property's physicalType when not an Atlas type, businessName, examples,
  logicalTypeOptions other than the four above and format email, and quality rules
  other than the four above).
- Refusals by the classification rules on a re-import (governance.pipeline.classification)
  are located as in an Atlas file (`fields[2].classification: ...`, the same position
  as schema[0].properties[2]).
"""

from dataclasses import dataclass, field
from typing import Any

from open_data_contract_standard.model import OpenDataContractStandard
from pydantic import ValidationError

API_VERSION = "v3.2.0"
ODCS_VERSION = "1.0.0"
PREFIX = "atlas."

# Atlas dataset keys kept as the document's customProperties, in the order written.
DATASET_CUSTOM_KEYS = (
    "is_active",
    "business_key",
    "event_time_field",
    "quality_threshold",
    "gate_action",
    "schedule",
    "auto_promote",
    "freshness_target",
    "country",
)
FIELD_CUSTOM_KEYS = ("country",)

# Top-level sections of an ODCS document Atlas has no place for, kept aside as they are
# and written back on export (`version` then replaces ODCS_VERSION).
KEPT_SECTIONS = (
    "version",
    "status",
    "domain",
    "dataProduct",
    "tenant",
    "tags",
    "servers",
    "support",
    "price",
    "roles",
    "slaDefaultElement",
    "slaProperties",
    "authoritativeDefinitions",
    "contractCreatedTs",
)

# Atlas type -> ODCS logicalType.
LOGICAL_TYPES = {
    "string": "string",
    "integer": "integer",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
    "email": "string",
    "enum": "string",
}
ODCS_LOGICAL_TYPES: tuple[str, ...] = (
    *("string", "date", "timestamp", "time", "number", "integer"),
    *("object", "array", "boolean", "map", "vector"),
)
# Atlas field key -> logicalTypeOptions key.
TYPE_OPTIONS = {
    "max_length": "maxLength",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
}


def is_odcs(data: Any) -> bool:
    """Whether a parsed document is meant as ODCS (then read by odcs_to_atlas)."""
    return isinstance(data, dict) and (data.get("kind") == "DataContract" or "apiVersion" in data)


@dataclass
class OdcsContract:
    """An ODCS document read: the Atlas contract, what Atlas does not know, and where each
    Atlas key came from in the document (to locate the contract's own errors there)."""

    contract: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)

    def locate(self, error: str) -> str:
        """An error about the Atlas contract ("fields[2].type: ...") told where it is in
        the ODCS document ("schema[0].properties[2].physicalType: ...")."""
        where, sep, message = error.partition(": ")
        if not sep:
            return error
        for key in sorted(self.locations, key=len, reverse=True):
            if where == key or where.startswith((key + ".", key + "[")):
                return f"{self.locations[key]}{where[len(key) :]}: {message}"
        return error


def _pydantic_location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "document"


def odcs_to_atlas(data: dict) -> OdcsContract:
    """An ODCS v3 document as an Atlas contract dict; `errors` are located in the document
    (the Atlas contract's own checks then run in contracts.validate_contract)."""
    result = OdcsContract(contract={})
    errors = result.errors
    api_version = data.get("apiVersion")
    if not (isinstance(api_version, str) and api_version.startswith("v3.")):
        errors.append(f"apiVersion: {api_version!r} is not ODCS v3 (e.g. {API_VERSION})")
    if data.get("kind") != "DataContract":
        errors.append(f"kind: {data.get('kind')!r} is not DataContract")
    try:
        OpenDataContractStandard.model_validate(data)
    except ValidationError as exc:
        for problem in exc.errors():
            errors.append(f"{_pydantic_location(problem['loc'])}: {problem['msg']}")
    if errors:
        return result
    schema = data.get("schema") or []
    if len(schema) != 1:
        errors.append(
            f"schema: an Atlas dataset is one schema object, this document has {len(schema)}"
        )
        return result
    dataset = _dataset(result, data)
    fields = _fields(result, schema[0].get("properties") or [])
    _business_key_from_primary_keys(result, dataset, schema[0].get("properties") or [])
    result.contract = {"atlas_contract": 1, "dataset": dataset, "fields": fields}
    return result


def _dataset(result: OdcsContract, data: dict) -> dict[str, Any]:
    dataset: dict[str, Any] = {"slug": data.get("id"), "name": data.get("name")}
    result.locations.update({"dataset.slug": "id", "dataset.name": "name"})
    description = data.get("description") or {}
    if "purpose" in description:
        dataset["description"] = description["purpose"]
        result.locations["dataset.description"] = "description.purpose"
    if other_parts := {key: value for key, value in description.items() if key != "purpose"}:
        result.extras["description"] = other_parts
    # The version Atlas writes anyway is nothing to keep (an exported file reads back as
    # no change).
    sections = {key: data[key] for key in KEPT_SECTIONS if key in data}
    if sections.get("version") == ODCS_VERSION:
        del sections["version"]
    if sections:
        result.extras["document"] = sections
    if "team" in data:
        dataset["owner"] = _owner(result, data["team"])
    unknown = _custom_properties(
        result, data.get("customProperties") or [], "", "dataset.", DATASET_CUSTOM_KEYS, dataset
    )
    if unknown:
        result.extras["customProperties"] = unknown
    return dataset


def _owner(result: OdcsContract, team: Any) -> str | None:
    members = team if isinstance(team, list) else (team or {}).get("members") or []
    where = "team" if isinstance(team, list) else "team.members"
    for index, member in enumerate(members):
        if str(member.get("role") or "").lower() == "owner":
            result.locations["dataset.owner"] = f"{where}[{index}].username"
            if not member.get("username"):
                result.errors.append(f"{where}[{index}].username: the owner needs a username")
            return member.get("username")
    return None


def _custom_properties(
    result: OdcsContract,
    items: list[dict],
    where: str,
    atlas_where: str,
    known: tuple[str, ...],
    target: dict[str, Any],
) -> list[dict]:
    """Atlas's own customProperties (atlas.<key>) put into `target`; the others returned."""
    unknown = []
    for index, item in enumerate(items):
        name = item.get("property") or ""
        location = f"{where}customProperties[{index}]"
        if not name.startswith(PREFIX):
            unknown.append(item)
            continue
        key = name[len(PREFIX) :]
        if key not in known:
            result.errors.append(
                f"{location}.property: {name!r} is not an Atlas property "
                f"(known: {', '.join(PREFIX + k for k in known)})"
            )
        elif key in target:
            result.errors.append(f"{location}.property: {name!r} is given twice")
        else:
            target[key] = item.get("value")
            result.locations[f"{atlas_where}{key}"] = f"{location}.value"
    return unknown


def _fields(result: OdcsContract, properties: list[dict]) -> list[dict[str, Any]]:
    fields = []
    unknown_by_field: dict[str, list[dict]] = {}
    for index, prop in enumerate(properties):
        where = f"schema[0].properties[{index}]"
        atlas = f"fields[{index}]"
        result.locations[atlas] = where
        values: dict[str, Any] = {"name": prop.get("name")}
        result.locations[f"{atlas}.name"] = f"{where}.name"
        data_type = _field_type(result, prop, where)
        if data_type is not None:
            values["type"] = data_type
            result.locations[f"{atlas}.type"] = (
                f"{where}.physicalType"
                if prop.get("physicalType") == data_type
                else f"{where}.logicalType"
            )
        for key in ("required", "unique", "classification", "description"):
            if key in prop:
                values[key] = prop[key]
                result.locations[f"{atlas}.{key}"] = f"{where}.{key}"
        options = prop.get("logicalTypeOptions") or {}
        for key, option in TYPE_OPTIONS.items():
            if option in options:
                values[key] = options[option]
                result.locations[f"{atlas}.{key}"] = f"{where}.logicalTypeOptions.{option}"
        if prop.get("enum"):
            values["allowed_values"] = [item.get("value") for item in prop["enum"]]
            result.locations[f"{atlas}.allowed_values"] = f"{where}.enum"
        _quality(result, prop.get("quality") or [], where, atlas, values)
        unknown = _custom_properties(
            result,
            prop.get("customProperties") or [],
            f"{where}.",
            f"{atlas}.",
            FIELD_CUSTOM_KEYS,
            values,
        )
        if unknown:
            unknown_by_field[str(prop.get("name"))] = unknown
        fields.append(values)
    if unknown_by_field:
        result.extras["properties"] = unknown_by_field
    return fields


def _field_type(result: OdcsContract, prop: dict, where: str) -> str | None:
    """The Atlas type of a property; None when it says none (Atlas's default, string)."""
    logical = prop.get("logicalType")
    physical = prop.get("physicalType")
    if logical is None:
        return physical if physical in LOGICAL_TYPES else None
    if logical not in ODCS_LOGICAL_TYPES:
        result.errors.append(
            f"{where}.logicalType: {logical!r} is not one of {', '.join(ODCS_LOGICAL_TYPES)}"
        )
        return None
    if physical in LOGICAL_TYPES and LOGICAL_TYPES[physical] == logical:
        return physical
    if logical == "string":
        if (prop.get("logicalTypeOptions") or {}).get("format") == "email":
            return "email"
        return "enum" if prop.get("enum") else "string"
    derived = {
        "integer": "integer",
        "number": "decimal",
        "boolean": "boolean",
        "date": "date",
        "timestamp": "datetime",
    }
    if logical not in derived:
        result.errors.append(
            f"{where}.logicalType: {logical!r} cannot be an Atlas field "
            "(string, integer, number, boolean, date or timestamp)"
        )
        return None
    return derived[logical]


def _quality(
    result: OdcsContract, rules: list[dict], where: str, atlas: str, values: dict[str, Any]
) -> None:
    """The library rules that say what an Atlas field says, when the property does not."""
    for index, rule in enumerate(rules):
        must_be = rule.get("mustBe")
        if rule.get("type", "library") != "library" or isinstance(must_be, bool) or must_be != 0:
            continue
        location = f"{where}.quality[{index}]"
        metric = rule.get("metric")
        arguments = rule.get("arguments") or {}
        found: dict[str, Any] = {}
        if metric == "nullValues":
            found["required"] = True
        elif metric == "duplicateValues":
            found["unique"] = True
        elif metric == "invalidValues":
            if "validValues" in arguments:
                found["allowed_values"] = arguments["validValues"]
            if "pattern" in arguments:
                found["pattern"] = arguments["pattern"]
        for key, value in found.items():
            if key not in values:
                values[key] = value
                result.locations[f"{atlas}.{key}"] = location


def _business_key_from_primary_keys(
    result: OdcsContract, dataset: dict[str, Any], properties: list[dict]
) -> None:
    keyed = [
        (prop.get("primaryKeyPosition") or 0, index, prop.get("name"))
        for index, prop in enumerate(properties)
        if prop.get("primaryKey")
    ]
    from_keys = [name for _, _, name in sorted(keyed)]
    if "business_key" not in dataset:
        if from_keys:
            dataset["business_key"] = from_keys
            result.locations["dataset.business_key"] = "schema[0].properties"
    elif isinstance(dataset["business_key"], list) and from_keys not in (
        [],
        dataset["business_key"],
    ):
        where = result.locations["dataset.business_key"]
        result.errors.append(
            f"{where}: {dataset['business_key']!r} differs from the primaryKey properties "
            f"{from_keys!r}"
        )


# --- Atlas -> ODCS --------------------------------------------------------------------------


def _custom(key: str, value: Any) -> dict[str, Any]:
    return {"property": PREFIX + key, "value": value}


def atlas_to_odcs(contract: dict[str, Any], *, extras: dict[str, Any] | None = None) -> dict:
    """An Atlas contract dict (as export_contract writes it) as an ODCS v3 document; the
    keys the contract leaves out are left out. `extras`: what odcs_to_atlas kept aside."""
    extras = extras or {}
    dataset = contract["dataset"]
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": dataset["slug"],
        "name": dataset["name"],
        "version": ODCS_VERSION,
    }
    document.update(extras.get("document", {}))
    if "description" in dataset:
        document["description"] = {"purpose": dataset["description"]}
    if "description" in extras:
        document["description"] = {**document.get("description", {}), **extras["description"]}
    if "owner" in dataset:
        owner = dataset["owner"]
        document["team"] = {"members": [{"username": owner, "role": "owner"}] if owner else []}
    business_key = list(dataset.get("business_key") or [])
    properties = [_property(item, business_key, extras) for item in contract["fields"]]
    document["schema"] = [
        {"name": dataset["slug"], "logicalType": "object", "properties": properties}
    ]
    custom = [_custom(key, dataset[key]) for key in DATASET_CUSTOM_KEYS if key in dataset]
    custom += extras.get("customProperties", [])
    if custom:
        document["customProperties"] = custom
    return document


def _property(item: dict[str, Any], business_key: list[str], extras: dict) -> dict[str, Any]:
    prop: dict[str, Any] = {"name": item["name"]}
    if "type" in item:
        prop["logicalType"] = LOGICAL_TYPES.get(item["type"], item["type"])
        prop["physicalType"] = item["type"]
    if item["name"] in business_key:
        prop["primaryKey"] = True
        prop["primaryKeyPosition"] = business_key.index(item["name"]) + 1
    for key in ("required", "unique"):
        if key in item:
            prop[key] = item[key]
    options = {option: item[key] for key, option in TYPE_OPTIONS.items() if key in item}
    if item.get("type") == "email":
        options["format"] = "email"
    if options:
        prop["logicalTypeOptions"] = options
    if item.get("allowed_values"):
        prop["enum"] = [{"value": value} for value in item["allowed_values"]]
    for key in ("classification", "description"):
        if key in item:
            prop[key] = item[key]
    custom = [_custom(key, item[key]) for key in FIELD_CUSTOM_KEYS if key in item]
    custom += extras.get("properties", {}).get(item["name"], [])
    if custom:
        prop["customProperties"] = custom
    return prop
