"""A dataset and its contract as a file (YAML or JSON): validated import, export.

Files in the Open Data Contract Standard v3 are read and written too (detected by
themselves on import; governance.pipeline.odcs says what maps to what).

    atlas_contract: 1
    dataset:
      slug: customers           # identifies the dataset: an import updates it in place
      name: Customers
      owner: alice              # a username, or null
      business_key: [customer_id]
      quality_threshold: 0.95
      gate_action: quarantine   # warn | quarantine | fail
      schedule: "*/15 * * * *"  # cron, or "" for manual
      freshness_target: P1D     # ISO 8601 duration, "1 00:00:00", or seconds
      country: NL               # phone numbers without a country code are Dutch ("": none)
      ...
    fields:                     # the whole contract, in order
      - name: customer_id
        type: integer           # governance.pipeline.models.FieldType
        required: true
        classification: internal  # a compliance.ClassificationLevel name, or null
        country: BE             # this field's numbers are Belgian (default: the dataset's)
      ...

Import validates everything first and reports every error with where it is
("fields[3].type: 'intger' is not one of ..."); with any error nothing is written.
A dataset key left out keeps its current value (a new dataset: the default); a
field's keys left out take their defaults, and fields not in the file are removed:
the file's `fields` are the whole contract. Re-importing the same file changes
nothing (idempotent). Each import writes one audit entry with the contract before
and after.

Classifications follow governance.pipeline.classification: a re-import that lowers
a field's level or removes a classified field is refused, with where, unless the
actor may lower classifications (a compliance officer, named as a user) and gives a
reason (`reason=`; `manage.py import_contract --user officer --reason "..."`).
"""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.dateparse import parse_duration
from django.utils.duration import duration_iso_string

from governance.compliance.models import AuditAction, ClassificationLevel
from governance.compliance.services import changed_values, record_audit
from governance.pipeline.classification import (
    change_field_classification,
    check_classification_change,
    check_field_removal,
    remove_dataset_field,
)
from governance.pipeline.models import Dataset, DatasetField, FieldType, GateAction
from governance.pipeline.odcs import atlas_to_odcs, is_odcs, odcs_to_atlas

CONTRACT_VERSION = 1

# contract key -> model field; the order is the order of an export.
DATASET_KEYS = {
    "slug": "slug",
    "name": "name",
    "description": "description",
    "owner": "owner",
    "is_active": "is_active",
    "business_key": "business_key",
    "event_time_field": "event_time_field",
    "quality_threshold": "quality_threshold",
    "gate_action": "gate_action",
    "schedule": "schedule",
    "auto_promote": "auto_promote",
    "freshness_target": "freshness_target",
    "country": "country",
}
FIELD_KEYS = {
    "name": "name",
    "type": "data_type",
    "required": "required",
    "unique": "unique",
    "max_length": "max_length",
    "allowed_values": "allowed_values",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "classification": "classification",
    "country": "country",
    "description": "description",
}
FIELD_DEFAULTS = {
    "type": FieldType.STRING.value,
    "required": False,
    "unique": False,
    "max_length": None,
    "allowed_values": [],
    "pattern": "",
    "minimum": None,
    "maximum": None,
    "classification": None,
    "country": "",
    "description": "",
}
_MODEL_TO_KEY = {
    **{model: key for key, model in DATASET_KEYS.items()},
    **{model: key for key, model in FIELD_KEYS.items()},
}


class ContractError(ValueError):
    """The contract file is not valid; `errors` lists each problem with its location."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# --- Reading a file -----------------------------------------------------------------------


def parse_contract_text(text: str, *, filename: str = "") -> list[dict]:
    """The contracts in a YAML or JSON text (YAML may hold several documents)."""
    suffix = Path(filename).suffix.lower()
    as_json = suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip()[:1] in "[")
    if as_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
        documents = data if isinstance(data, list) else [data]
    else:
        try:
            documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ContractError([f"{where}{exc.problem or exc}"]) from None
        except yaml.YAMLError as exc:
            raise ContractError([f"not valid YAML: {exc}"]) from None
    if not documents:
        raise ContractError(["the file holds no contract"])
    return documents


def read_contract_file(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError([f"{path.name} is not UTF-8 text ({exc.reason})"]) from None
    return parse_contract_text(text, filename=path.name)


# --- Validation -----------------------------------------------------------------------------


@dataclass
class ValidContract:
    dataset: dict[str, Any]  # model field -> value, only the keys the file gives
    fields: list[dict[str, Any]]  # model field -> value, every key
    errors: list[str] = field(default_factory=list)
    # An ODCS document's parts Atlas has no place for (odcs.OdcsContract.extras), kept on
    # the dataset; None: the file was Atlas's own, and what the dataset keeps stays.
    odcs_extras: dict[str, Any] | None = None


def _one_of(value, choices: list[str]) -> str:
    return f"{value!r} is not one of {', '.join(choices)}"


class _Checker:
    """Collects errors with their location while converting contract values."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{self.prefix}{where}: {message}")

    def text(self, where: str, value, *, allow_empty: bool = True):
        if value is None and allow_empty:
            return ""
        if not isinstance(value, str):
            self.error(where, f"expected text, got {type(value).__name__} {value!r}")
            return None
        if not allow_empty and not value.strip():
            self.error(where, "must not be empty")
            return None
        return value

    def boolean(self, where: str, value):
        if not isinstance(value, bool):
            self.error(where, f"expected true or false, got {value!r}")
            return None
        return value

    def decimal(self, where: str, value, *, nullable: bool = True):
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.error(where, f"expected a number, got {value!r}")
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.error(where, f"expected a number, got {value!r}")
            return None
        if not number.is_finite():
            self.error(where, f"expected a finite number, got {value!r}")
            return None
        return number

    def text_list(self, where: str, value) -> list[str] | None:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {value!r}")
            return None
        items = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.error(f"{where}[{index}]", f"expected text, got {item!r}")
                continue
            items.append(str(item))
        return items

    def unknown_keys(self, where: str, data: dict, known) -> None:
        for key in data:
            if key not in known:
                self.error(
                    f"{where}{key}" if where else str(key),
                    f"unknown key (known: {', '.join(known)})",
                )

    def model_errors(self, where: str, exc: ValidationError) -> None:
        for name, messages in exc.message_dict.items():
            key = _MODEL_TO_KEY.get(name, name)
            location = where.rstrip(".") if key == "__all__" else f"{where}{key}"
            for message in messages:
                self.error(location, message)


def _duration(check: _Checker, where: str, value) -> timedelta | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str) and (parsed := parse_duration(value.strip())) is not None:
        return parsed
    check.error(where, f"{value!r} is not a duration (e.g. P1D, PT6H, '1 00:00:00' or seconds)")
    return None


def validate_contract(data: Any, *, prefix: str = "") -> ValidContract:
    """Check a contract and convert it to model values; `errors` lists what is wrong.

    An ODCS v3 document (governance.pipeline.odcs) is read as the Atlas contract it
    holds, its errors located in the ODCS document."""
    if is_odcs(data):
        return _validate_odcs(data, prefix=prefix)
    check = _Checker(prefix)
    result = ValidContract(dataset={}, fields=[], errors=check.errors)
    if not isinstance(data, dict):
        check.error("contract", "expected a mapping with 'dataset' and 'fields'")
        return result
    dataset, fields = _contract_parts(check, data)
    # Fields first: the dataset's business key and event time field refer to them.
    result.fields, field_names = _validate_fields(check, fields)
    result.dataset = _validate_dataset(check, dataset, field_names)
    if not check.errors:
        _clean_dataset(check, result.dataset)
    return result


def _validate_odcs(data: dict, *, prefix: str) -> ValidContract:
    converted = odcs_to_atlas(data)
    if converted.errors:
        return ValidContract(dataset={}, fields=[], errors=[prefix + e for e in converted.errors])
    result = validate_contract(converted.contract)
    result.errors = [prefix + converted.locate(error) for error in result.errors]
    result.odcs_extras = converted.extras
    return result


def _contract_parts(check: _Checker, data: dict) -> tuple[dict, list]:
    """The version checked; the dataset mapping and the fields list ({} and [] if wrong)."""
    check.unknown_keys("", data, ("atlas_contract", "dataset", "fields"))
    if data.get("atlas_contract", CONTRACT_VERSION) != CONTRACT_VERSION:
        check.error("atlas_contract", f"version {data['atlas_contract']!r} is not supported (1)")
    dataset = data.get("dataset")
    fields = data.get("fields")
    if not isinstance(dataset, dict):
        check.error("dataset", "missing, or not a mapping")
        dataset = {}
    if not isinstance(fields, list):
        check.error("fields", "missing, or not a list")
        fields = []
    return dataset, fields


# The fields.


def _validate_fields(check: _Checker, fields: list) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each field's model values (none for an item that is not a mapping), and the
    position of each field name."""
    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    seen: dict[str, int] = {}
    valid = []
    for index, item in enumerate(fields):
        if not isinstance(item, dict):
            check.error(f"fields[{index}]", f"expected a mapping, got {item!r}")
            continue
        valid.append(_validate_field(check, index, item, levels, seen))
    return valid, seen


def _validate_field(
    check: _Checker,
    index: int,
    item: dict,
    levels: dict[str, ClassificationLevel],
    seen: dict[str, int],
) -> dict[str, Any]:
    """One field's model values; the model's own checks run when the file's values pass."""
    where = f"fields[{index}]."
    check.unknown_keys(where, item, FIELD_KEYS)
    given = {**FIELD_DEFAULTS, **item}
    values: dict[str, Any] = {"position": index}
    values["name"] = _field_name(check, where, item.get("name"), index, seen)
    values["data_type"] = _field_type(check, where, given["type"])
    for key in ("required", "unique"):
        values[key] = check.boolean(f"{where}{key}", given[key])
    values["max_length"] = _max_length(check, where, given["max_length"])
    values["allowed_values"] = check.text_list(f"{where}allowed_values", given["allowed_values"])
    values["pattern"] = check.text(f"{where}pattern", given["pattern"])
    values["description"] = check.text(f"{where}description", given["description"])
    values["country"] = check.text(f"{where}country", given["country"])
    values["minimum"] = check.decimal(f"{where}minimum", given["minimum"])
    values["maximum"] = check.decimal(f"{where}maximum", given["maximum"])
    values["classification"] = _classification(check, where, given["classification"], levels)
    if not any(f"{check.prefix}{where}" in error for error in check.errors):
        try:
            DatasetField(**values).full_clean(exclude=["dataset"], validate_unique=False)
        except ValidationError as exc:
            check.model_errors(where, exc)
    return values


def _field_name(check: _Checker, where: str, value, index: int, seen: dict[str, int]):
    """The field's name, which no earlier field may have; `seen` records it."""
    name = check.text(f"{where}name", value, allow_empty=False)
    if name is not None:
        if name in seen:
            check.error(f"{where}name", f"{name!r} is already the name of fields[{seen[name]}]")
        seen[name] = index
    return name


def _field_type(check: _Checker, where: str, value):
    field_types = [choice.value for choice in FieldType]
    if value not in field_types:
        check.error(f"{where}type", _one_of(value, field_types))
    return value


def _max_length(check: _Checker, where: str, value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        check.error(f"{where}max_length", f"expected a positive whole number, got {value!r}")
        return None
    return value


def _classification(
    check: _Checker, where: str, name, levels: dict[str, ClassificationLevel]
) -> ClassificationLevel | None:
    """The level named, or None (no level, or an unknown one: an error)."""
    if name is None:
        return None
    if name not in levels:
        check.error(f"{where}classification", _one_of(name, sorted(levels)))
        return None
    return levels[name]


# The dataset.


def _validate_dataset(check: _Checker, dataset: dict, field_names: dict[str, int]) -> dict:
    """The dataset's model values: slug and name always, the other keys when given."""
    check.unknown_keys("dataset.", dataset, DATASET_KEYS)
    values: dict[str, Any] = {}
    for key in ("slug", "name"):
        values[key] = check.text(f"dataset.{key}", dataset.get(key), allow_empty=False)
    for key in ("description", "schedule", "event_time_field", "country"):
        if key in dataset:
            values[key] = check.text(f"dataset.{key}", dataset[key])
    for key in ("is_active", "auto_promote"):
        if key in dataset:
            values[key] = check.boolean(f"dataset.{key}", dataset[key])
    if "owner" in dataset:
        values["owner"] = _owner(check, dataset["owner"])
    if "business_key" in dataset:
        values["business_key"] = _business_key(check, dataset["business_key"], field_names)
    _check_event_time_field(check, values.get("event_time_field"), field_names)
    if "quality_threshold" in dataset:
        values["quality_threshold"] = check.decimal(
            "dataset.quality_threshold", dataset["quality_threshold"], nullable=False
        )
    if "gate_action" in dataset:
        values["gate_action"] = _gate_action(check, dataset["gate_action"])
    if "freshness_target" in dataset:
        values["freshness_target"] = _duration(
            check, "dataset.freshness_target", dataset["freshness_target"]
        )
    return values


def _owner(check: _Checker, username):
    """The user named, or None (no owner, or no such user: an error)."""
    if username is None:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        check.error("dataset.owner", f"no user is named {username!r}")
    return user


def _business_key(check: _Checker, value, field_names: dict[str, int]) -> list[str]:
    keys = check.text_list("dataset.business_key", value) or []
    for index, key in enumerate(keys):
        if key not in field_names:
            check.error(f"dataset.business_key[{index}]", f"{key!r} is not a field of the contract")
    return keys


def _check_event_time_field(check: _Checker, name, field_names: dict[str, int]) -> None:
    if name and name not in field_names:
        check.error("dataset.event_time_field", f"{name!r} is not a field of the contract")


def _gate_action(check: _Checker, value):
    actions = [choice.value for choice in GateAction]
    if value not in actions:
        check.error("dataset.gate_action", _one_of(value, actions))
    return value


def _clean_dataset(check: _Checker, values: dict[str, Any]) -> None:
    """The model's own checks of the dataset, over its defaults for the keys not given."""
    candidate = Dataset(**{**_model_defaults(), **values})
    try:
        candidate.full_clean(validate_unique=False)
    except ValidationError as exc:
        check.model_errors("dataset.", exc)


def _model_defaults() -> dict[str, Any]:
    return {
        f.name: f.get_default()
        for f in Dataset._meta.concrete_fields
        if f.name in DATASET_KEYS.values() and f.name != "owner"
    }


# --- Import ---------------------------------------------------------------------------------


@dataclass
class ImportResult:
    dataset: Dataset
    created: bool
    fields_added: list[str]
    fields_changed: list[str]
    fields_removed: list[str]
    dataset_changed: bool

    @property
    def changed(self) -> bool:
        return (
            self.created
            or self.dataset_changed
            or bool(self.fields_added or self.fields_changed or self.fields_removed)
        )

    def summary(self) -> str:
        if self.created:
            return f"{self.dataset.slug}: created with {len(self.fields_added)} fields"
        if not self.changed:
            return f"{self.dataset.slug}: unchanged"
        parts = []
        if self.dataset_changed:
            parts.append("dataset settings changed")
        for label, names in (
            ("added", self.fields_added),
            ("changed", self.fields_changed),
            ("removed", self.fields_removed),
        ):
            if names:
                parts.append(f"fields {label}: {', '.join(names)}")
        return f"{self.dataset.slug}: updated ({'; '.join(parts)})"


def _assign(instance, values: dict[str, Any]) -> bool:
    """Set values on an instance; whether any differed from what it held."""
    changed = False
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed = True
    return changed


def import_contracts(
    *, documents: list[Any], actor, source: str = "", reason: str = ""
) -> list[ImportResult]:
    """Validate every contract, then import them all in one transaction (or none).

    `reason`: why classifications are lowered or classified fields removed, if any are.
    """
    valid, errors, prefixes = [], [], []
    slugs: dict[str, int] = {}
    for number, document in enumerate(documents, start=1):
        prefix = f"contract {number}: " if len(documents) > 1 else ""
        contract = validate_contract(document, prefix=prefix)
        errors += contract.errors
        slug = contract.dataset.get("slug")
        if slug and slug in slugs:
            errors.append(f"{prefix}dataset.slug: {slug!r} is also in contract {slugs[slug]}")
        slugs[slug] = number
        valid.append(contract)
        prefixes.append(prefix)
    if errors:
        raise ContractError(errors)
    with transaction.atomic():
        for contract, prefix in zip(valid, prefixes, strict=True):
            errors += _classification_errors(contract, actor=actor, reason=reason, prefix=prefix)
        if errors:
            raise ContractError(errors)
        return [
            _import_one(contract, actor=actor, source=source, reason=reason) for contract in valid
        ]


class _PreviewDoneError(Exception):
    def __init__(self, results: list[ImportResult]):
        self.results = results


def preview_contracts(*, documents: list[Any], actor, reason: str = "") -> list[ImportResult]:
    """What import_contracts would do, without doing it: the same checks (ContractError
    with every problem, located) and the same results, the import rolled back whole (its
    writes, audit entries and queued work alike)."""
    try:
        with transaction.atomic():
            results = import_contracts(
                documents=documents, actor=actor, source="a preview", reason=reason
            )
            raise _PreviewDoneError(results)
    except _PreviewDoneError as done:
        return done.results


def import_contract(*, data: Any, actor, source: str = "", reason: str = "") -> ImportResult:
    return import_contracts(documents=[data], actor=actor, source=source, reason=reason)[0]


def _refusal(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


def _classification_errors(contract: ValidContract, *, actor, reason: str, prefix: str) -> list:
    """What the classification rules refuse in a re-import, located; nothing is written."""
    slug = contract.dataset["slug"]
    dataset = Dataset.objects.select_for_update().filter(slug=slug).first()
    existing = {
        f.name: f
        for f in DatasetField.objects.filter(dataset=dataset).select_related("classification")
    }
    errors = []
    for index, values in enumerate(contract.fields):
        current = existing.pop(values["name"], None)
        try:
            check_classification_change(
                field_label=f"{slug}.{values['name']}",
                before=current.classification if current else None,
                after=values["classification"],
                actor=actor,
                reason=reason,
                creating=current is None,
            )
        except (PermissionDenied, ValidationError) as error:
            errors.append(f"{prefix}fields[{index}].classification: {_refusal(error)}")
    for name, stale in sorted(existing.items()):
        try:
            check_field_removal(field=stale, actor=actor, reason=reason)
        except (PermissionDenied, ValidationError) as error:
            errors.append(f"{prefix}fields: {name!r} is not in the file: {_refusal(error)}")
    return errors


def _import_one(contract: ValidContract, *, actor, source: str, reason: str = "") -> ImportResult:
    values = contract.dataset
    dataset = Dataset.objects.select_for_update().filter(slug=values["slug"]).first()
    created = dataset is None
    before = None if created else export_contract(dataset)
    if contract.odcs_extras is not None:
        values = {**values, "odcs_extras": contract.odcs_extras}
    if created:
        dataset = Dataset(**values)
        dataset.save()
        dataset_changed = True
    else:
        dataset_changed = _assign(dataset, values)
        if dataset_changed:
            dataset.save()
    existing = {f.name: f for f in DatasetField.objects.filter(dataset=dataset)}
    added, changed = [], []
    where = f"contract imported{f' from {source}' if source else ''}"
    for field_values in contract.fields:
        # The level is set by the classification rules, which audit it by name.
        level = field_values["classification"]
        others = {key: value for key, value in field_values.items() if key != "classification"}
        current = existing.pop(field_values["name"], None)
        if current is None:
            current = DatasetField.objects.create(dataset=dataset, **others)
            added.append(field_values["name"])
            is_changed = False
        else:
            is_changed = _assign(current, others)
            if is_changed:
                current.save()
        reclassified = change_field_classification(
            field=current,
            level=level,
            actor=actor,
            reason=reason,
            detail=where,
            created=field_values["name"] in added,
        )
        if (is_changed or reclassified) and field_values["name"] not in added:
            changed.append(field_values["name"])
    removed = sorted(existing)
    for name, stale in existing.items():
        try:
            if stale.classification_id is not None:
                remove_dataset_field(field=stale, actor=actor, reason=reason, detail=where)
            else:
                stale.delete()
        except ProtectedError as exc:
            raise ContractError(
                [f"fields: {name!r} cannot be removed, other records refer to it ({exc.args[0]})"]
            ) from None
    result = ImportResult(dataset, created, added, changed, removed, dataset_changed)
    after = export_contract(dataset)
    old, new = changed_values(before, after)
    record_audit(
        actor=actor,
        action=AuditAction.CREATE if created else AuditAction.UPDATE,
        instance=dataset,
        before=old,
        after=new,
        detail=f"{where}: {result.summary()}",
    )
    return result


# --- Export -----------------------------------------------------------------------------


def _number(value: Decimal | None):
    """A Decimal as a plain YAML/JSON number when that is exact, else as text."""
    if value is None:
        return None
    value = value.normalize()
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def export_contract(dataset: Dataset) -> dict[str, Any]:
    """The dataset and its contract as a dict that import_contract reads back the same."""
    fields = []
    for item in dataset.fields.select_related("classification").order_by("position", "name"):
        values = {
            "name": item.name,
            "type": item.data_type,
            "required": item.required,
            "unique": item.unique,
            "max_length": item.max_length,
            "allowed_values": list(item.allowed_values),
            "pattern": item.pattern,
            "minimum": _number(item.minimum),
            "maximum": _number(item.maximum),
            "classification": item.classification.name if item.classification else None,
            "country": item.country,
            "description": item.description,
        }
        # Defaults are left out to keep the file short; import puts them back.
        fields.append(
            {
                key: value
                for key, value in values.items()
                if key in ("name", "type") or value != FIELD_DEFAULTS[key]
            }
        )
    return {
        "atlas_contract": CONTRACT_VERSION,
        "dataset": {
            "slug": dataset.slug,
            "name": dataset.name,
            "description": dataset.description,
            "owner": dataset.owner.get_username() if dataset.owner_id else None,
            "is_active": dataset.is_active,
            "business_key": list(dataset.business_key),
            "event_time_field": dataset.event_time_field,
            "quality_threshold": _number(Decimal(dataset.quality_threshold)),
            "gate_action": dataset.gate_action,
            "schedule": dataset.schedule,
            "auto_promote": dataset.auto_promote,
            "freshness_target": duration_iso_string(dataset.freshness_target),
            "country": dataset.country,
        },
        "fields": fields,
    }


def dump_contracts(
    contracts: list[dict], *, fmt: str = "yaml", odcs_extras: list[dict] | None = None
) -> str:
    """Contracts as a file: Atlas YAML or JSON, or ODCS v3 YAML (fmt="odcs"), each with
    what its dataset kept of the ODCS document it was imported from (`odcs_extras`, in
    the contracts' order)."""
    if fmt == "odcs":
        extras = odcs_extras or [{}] * len(contracts)
        contracts = [
            atlas_to_odcs(contract, extras=kept)
            for contract, kept in zip(contracts, extras, strict=True)
        ]
        return yaml.safe_dump_all(contracts, sort_keys=False, allow_unicode=True)
    if fmt == "json":
        return json.dumps(contracts[0] if len(contracts) == 1 else contracts, indent=2) + "\n"
    return yaml.safe_dump_all(contracts, sort_keys=False, allow_unicode=True)
