"""Reads of the compliance app's own tables for the pages above it."""

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models

from governance.compliance.models import AuditAction, AuditLog, ClassificationSuggestion


def decision_note(*, suggestion: ClassificationSuggestion) -> str:
    """The reason given when `suggestion` was decided (kept in the audit log), or ""."""
    note = (
        AuditLog.objects.filter(
            object_type=ClassificationSuggestion._meta.label_lower,
            object_id=str(suggestion.pk),
            action=AuditAction.UPDATE,
        )
        .exclude(detail="")
        .order_by("-id")
        .values_list("detail", flat=True)
        .first()
    )
    return note or ""


@dataclass(frozen=True)
class Change:
    field: str  # the field's name as people say it ("classification", not "classification_id")
    before: str
    after: str


def readable_changes(entries: list[AuditLog]) -> dict[int, list[Change]]:
    """Each entry's changes, field by field, with related objects named instead of their
    ids ("classification: restricted → public"), the names read in one query per related
    model for all the entries."""
    wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
    plans = {}
    for entry in entries:
        fields = _foreign_keys(entry.object_type)
        plans[entry.pk] = fields
        for values in (entry.before or {}, entry.after or {}):
            for key, value in values.items():
                if key in fields and value is not None:
                    wanted[fields[key].related_model].add(value)
    names = {
        model: {obj.pk: str(obj) for obj in model._default_manager.filter(pk__in=ids)}
        for model, ids in wanted.items()
    }
    result = {}
    for entry in entries:
        fields = plans[entry.pk]
        before, after = entry.before or {}, entry.after or {}
        changes = []
        for key in list(dict.fromkeys([*after, *before])):
            if key == "updated_at":
                continue  # moves with every save
            field = fields.get(key)
            label = field.name if field is not None else key

            def shown(value: Any, field=field) -> str:
                if value is None:
                    return "—"
                if field is not None:
                    return names.get(field.related_model, {}).get(value, f"#{value}")
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

            changes.append(
                Change(
                    label,
                    shown(before.get(key)) if key in before else "",
                    shown(after.get(key)) if key in after else "",
                )
            )
        result[entry.pk] = changes
    return result


def _foreign_keys(object_type: str) -> dict[str, Any]:
    """attname -> field of the foreign keys of the model an audit entry is about."""
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return {}
    return {
        field.attname: field
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is not None
    }
