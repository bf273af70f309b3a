"""What chart keeps of protected values, read back: originals, reveals, key rotation.

A chart record holds ciphertext for fields whose level requires encryption, and the
sealed (encrypted) original of a free-text value whose PII was replaced by its type.
This module turns them back into values for the few who may see them (a reveal: one
value, with clearance and a reason, audited; governance.compliance.reveal), for
re-protection when a classification changes (chart.reprotect), and re-encrypts or
re-tokenises them when a key rotates.
"""

import re
from typing import Any

from django.db import transaction
from django.db.models import Q

from chart.contract import COERCERS, CoercionError
from chart.evaluation import sealed_context
from chart.models import ChartRecord, QuarantinedRecord
from governance.compliance.clearance import Clearance
from governance.compliance.keys import ENCRYPTED_PREFIX, Keyring, field_context, is_encrypted
from governance.compliance.models import AuditAction, PiiPattern
from governance.compliance.reveal import Revealed, RevealRefusedError, reveal
from governance.compliance.services import record_audit
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import Dataset, DatasetField

# What of a record a reveal reads: an encrypted value, the original of a tagged value,
# or the original of a tagged field outside the contract.
VALUE, ORIGINAL, EXTRA = "value", "original", "extra"
PARTS = (VALUE, ORIGINAL, EXTRA)
_TAG = re.compile(r"<([a-z0-9_]{1,32})>")


def corrected_context(dataset_id: int, field_name: str) -> str:
    """What a steward's corrected value of an encrypted field is bound to."""
    return field_context(dataset_id, f"{field_name}:corrected")


def typed(data_type: str | None, text: str) -> Any:
    """A decrypted value back in its field's type (as text if it no longer fits)."""
    if not data_type:
        return text
    try:
        return COERCERS[data_type](text)
    except CoercionError:
        return text


def originals(
    record: ChartRecord, *, field_types: dict[str, str], keyring: Keyring
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's typed values and extras as they arrived: decrypted and unsealed."""
    sealed = record.sealed or {}
    sealed_data, sealed_extras = sealed.get("data", {}), sealed.get("extras", {})
    data = {}
    for name, value in record.data.items():
        if name in sealed_data:
            data[name] = keyring.decrypt(
                sealed_data[name], context=sealed_context(record.dataset_id, name)
            )
        elif is_encrypted(value):
            text = keyring.decrypt(value, context=field_context(record.dataset_id, name))
            data[name] = typed(field_types.get(name), text)
        else:
            data[name] = value
    extras = {
        name: keyring.decrypt(
            sealed_extras[name], context=sealed_context(record.dataset_id, name, extra=True)
        )
        if name in sealed_extras
        else value
        for name, value in (record.extras or {}).items()
    }
    return data, extras


# --- Reveal -------------------------------------------------------------------------------


def protected_parts(record: ChartRecord) -> list[tuple[str, str]]:
    """(part, field) of every value of the record a reveal could read."""
    sealed = record.sealed or {}
    parts = [(VALUE, name) for name, value in record.data.items() if is_encrypted(value)]
    parts += [(ORIGINAL, name) for name in sealed.get("data", {})]
    parts += [(EXTRA, name) for name in sealed.get("extras", {})]
    return parts


def reveal_level(record: ChartRecord, part: str, field_name: str, clearance: Clearance) -> int:
    """The level whose clearance a reveal of this part needs.

    An encrypted value: its field's level. An original with PII in it: the most
    sensitive of its field's level and the levels its PII's patterns call for (the
    highest level for PII no pattern gives one, and for fields outside the contract).
    """
    field_level = (
        DatasetField.objects.filter(dataset_id=record.dataset_id, name=field_name)
        .values_list("classification_id", flat=True)
        .first()
    )
    highest = clearance.highest.id if clearance.highest else None
    if part == VALUE:
        return field_level if field_level is not None else highest
    if part == EXTRA:
        return highest
    tagged = record.data.get(field_name) if part == ORIGINAL else None
    types = set(_TAG.findall(tagged)) if isinstance(tagged, str) else set()
    defaults = dict(
        PiiPattern.objects.filter(pii_type__in=types).values_list(
            "pii_type", "default_classification_id"
        )
    )
    levels = [defaults.get(pii_type) or highest for pii_type in types]
    if field_level is not None:
        levels.append(field_level)
    return clearance.highest_of([pk for pk in levels if pk is not None] or [highest])


def read_protected(record: ChartRecord, part: str, field_name: str) -> str:
    """Decrypt one protected part of a record (no checks: callers are reveal and re-protect)."""
    keyring = Keyring.from_settings()
    sealed = record.sealed or {}
    if part == VALUE:
        value = record.data.get(field_name)
        if not is_encrypted(value):
            raise ValueError(f"{field_name!r} of chart record {record.pk} is not encrypted")
        return keyring.decrypt(value, context=field_context(record.dataset_id, field_name))
    if part == ORIGINAL and field_name in sealed.get("data", {}):
        return keyring.decrypt(
            sealed["data"][field_name], context=sealed_context(record.dataset_id, field_name)
        )
    if part == EXTRA and field_name in sealed.get("extras", {}):
        return keyring.decrypt(
            sealed["extras"][field_name],
            context=sealed_context(record.dataset_id, field_name, extra=True),
        )
    raise ValueError(f"chart record {record.pk} keeps no {part} of {field_name!r}")


def reveal_chart_value(
    *, record: ChartRecord, part: str, field_name: str, actor, reason: str
) -> Revealed:
    """One protected value of a chart record, for a cleared reader with a reason; audited."""
    if (part, field_name) not in protected_parts(record):
        raise RevealRefusedError(f"chart record {record.pk} keeps no protected {field_name}.")
    clearance = Clearance.for_user(actor)
    return reveal(
        actor=actor,
        level_id=reveal_level(record, part, field_name, clearance),
        instance=record,
        field_name=field_name if part == VALUE else f"{field_name} ({part})",
        reason=reason,
        read=lambda: read_protected(record, part, field_name),
    )


# --- Key rotation ---------------------------------------------------------------------


def _rotated(value: Any, keyring: Keyring, context: str) -> str | None:
    """The value under the current key, or None when it already is (or is no ciphertext)."""
    if not is_encrypted(value) or not keyring.needs_rotation(value):
        return None
    return keyring.encrypt(keyring.decrypt(value, context=context), context=context)


def _reencrypt_record(record: ChartRecord, keyring: Keyring) -> int:
    changed = 0
    dataset_id = record.dataset_id
    for name, value in record.data.items():
        if (new := _rotated(value, keyring, field_context(dataset_id, name))) is not None:
            record.data[name] = new
            changed += 1
    for where, extra in (("data", False), ("extras", True)):
        originals_kept = (record.sealed or {}).get(where, {})
        for name, value in originals_kept.items():
            context = sealed_context(dataset_id, name, extra=extra)
            if (new := _rotated(value, keyring, context)) is not None:
                originals_kept[name] = new
                changed += 1
    return changed


def reencrypt_values(*, batch_size: int = 1000, actor="reencrypt") -> dict[str, int]:
    """Re-encrypt every value not under the current key; batch by batch, resumable.

    Covers chart values, the sealed originals of tagged values, and stewards' corrected
    values of encrypted fields in quarantine.
    """
    keyring = Keyring.from_settings()
    counts = {"records": 0, "values": 0}
    holding_ciphertext = {
        ChartRecord: Q(data__icontains=ENCRYPTED_PREFIX) | Q(sealed__icontains=ENCRYPTED_PREFIX),
        QuarantinedRecord: Q(corrected_payload__icontains=ENCRYPTED_PREFIX),
    }
    for model, holding in holding_ciphertext.items():
        last_id = 0
        while True:
            with transaction.atomic():
                batch = list(
                    model.objects.select_for_update()
                    .filter(holding, id__gt=last_id)
                    .order_by("id")[:batch_size]
                )
                if not batch:
                    break
                for record in batch:
                    if model is ChartRecord:
                        changed, columns = _reencrypt_record(record, keyring), ["data", "sealed"]
                    else:
                        changed = _reencrypt_corrections(record, keyring)
                        columns = ["corrected_payload"]
                    if changed:
                        record.save(update_fields=columns)
                        counts["records"] += 1
                        counts["values"] += changed
                last_id = batch[-1].pk
    record_audit(
        actor=actor,
        action=AuditAction.ACTION,
        object_type="chart.chartrecord",
        detail=f"re-encrypted {counts['values']} values in {counts['records']} records "
        f"under key {keyring.current_id}",
    )
    return counts


def _reencrypt_corrections(record: QuarantinedRecord, keyring: Keyring) -> int:
    changed = 0
    for name, value in (record.corrected_payload or {}).items():
        context = corrected_context(record.dataset_id, name)
        if (new := _rotated(value, keyring, context)) is not None:
            record.corrected_payload[name] = new
            changed += 1
    return changed


def retoken_values(*, batch_size: int = 1000, actor="retoken") -> dict[str, int]:
    """Make every stored token again under the current ATLAS_HASH_KEY key.

    Tokens are of the original values: decrypted, unsealed, or the typed value of a
    unique field. A business key that holds tokens is rebuilt with them. Run right
    after putting a new hash key first: until then, new tokens and old ones differ.
    """
    tokens = TokenKeyring.from_settings()
    keyring = Keyring.from_settings()
    counts = {"records": 0, "tokens": 0}
    for dataset in Dataset.objects.order_by("pk"):
        field_types = dict(
            DatasetField.objects.filter(dataset=dataset).values_list("name", "data_type")
        )
        last_id = 0
        while True:
            with transaction.atomic():
                batch = list(
                    ChartRecord.objects.select_for_update()
                    .filter(dataset=dataset, id__gt=last_id)
                    .exclude(tokens={})
                    .order_by("id")[:batch_size]
                )
                if not batch:
                    break
                for record in batch:
                    old = record.tokens
                    if all(tokens.is_current(token) for token in old.values()):
                        continue
                    data, _extras = originals(record, field_types=field_types, keyring=keyring)
                    record.tokens = {name: tokens.token(data[name]) for name in old}
                    record.business_key = _rekeyed(record.business_key, old, record.tokens)
                    record.save(update_fields=["tokens", "business_key"])
                    counts["records"] += 1
                    counts["tokens"] += len(old)
                last_id = batch[-1].pk
    record_audit(
        actor=actor,
        action=AuditAction.ACTION,
        object_type="chart.chartrecord",
        detail=f"re-made {counts['tokens']} tokens in {counts['records']} records "
        f"under hash key {tokens.current_id}",
    )
    return counts


def _rekeyed(business_key: str, old: dict[str, str], new: dict[str, str]) -> str:
    """The business key with each old token in it replaced by the new one."""
    for name, token in old.items():
        if token in business_key:
            business_key = business_key.replace(token, new[name])
    return business_key
