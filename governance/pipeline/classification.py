"""Changing a field's classification: who may, what it takes, what follows.

The one source of truth for every path that changes or removes a classified field:
the admin's field pages and the dataset's contract inline, contract import (admin
and `manage.py import_contract`), accepting a PII suggestion, deleting a field.

- Raising a field's level (a higher rank, or classifying an unclassified field) is
  open to whoever may change the contract (stewards).
- Lowering it (a lower rank, or removing the classification), removing a classified
  field from its contract, or accepting a suggestion below the field's current level
  is a compliance officer's decision: it needs `compliance.lower_classification`
  and a reason (DESIGN.md, Sensitive values).
- Every change is audited by level names (`restricted → public`), the field
  (`dataset.field`), who, and why.
- When a change alters what chart stores of the field's values (encrypted or not,
  or which PII its level expects in free text), the dataset's existing chart values
  are re-protected by a queued run (chart.reprotect), sent after commit.

Refusals are `PermissionDenied` (the actor may not) or `ValidationError` (a reason is
missing); both messages say what is needed.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from governance.compliance.models import (
    AuditAction,
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
    SuggestionStatus,
)
from governance.compliance.services import record_audit, record_change, snapshot
from governance.pipeline.models import DatasetField, FieldType, Run
from governance.pipeline.services import request_reprotect

LOWER_PERMISSION = "compliance.lower_classification"
LOWER_PERMISSION_NAME = "Can lower or remove a field's classification"
CHANGE_PERMISSION = "pipeline.change_datasetfield"
ADD_PERMISSION = "pipeline.add_datasetfield"
UNCLASSIFIED = "unclassified"


class LoweringRefusedError(PermissionDenied):
    """The actor may not lower or remove a classification."""


def level_name(level: ClassificationLevel | None) -> str:
    return level.name if level is not None else UNCLASSIFIED


def is_lowering(before: ClassificationLevel | None, after: ClassificationLevel | None) -> bool:
    """A lower rank, or a level removed."""
    if before is None:
        return False
    return after is None or after.rank < before.rank


def _is_person(actor) -> bool:
    # A string names a system component ("manage.py seed_demo"); None is nobody.
    return actor is not None and not isinstance(actor, str)


def may_lower(actor) -> bool:
    """Only a person holding the permission lowers: the audit log must name who decided."""
    return (
        _is_person(actor)
        and getattr(actor, "is_active", False)
        and actor.has_perm(LOWER_PERMISSION)
    )


def _require_lowering(what: str, *, actor, reason: str) -> None:
    if not may_lower(actor):
        raise LoweringRefusedError(
            f"{what} is a compliance officer's decision: it needs the permission "
            f"“{LOWER_PERMISSION_NAME}” and a reason."
        )
    if not (reason or "").strip():
        raise ValidationError(
            f"{what} needs a reason: say why in “reason for lowering”; it is kept in the "
            "audit log.",
            code="reason_required",
        )


def check_classification_change(
    *,
    field_label: str,
    before: ClassificationLevel | None,
    after: ClassificationLevel | None,
    actor,
    reason: str = "",
    creating: bool = False,
) -> None:
    """Refuse a change the actor may not make (PermissionDenied) or that lacks a reason."""
    if _level_id(before) == _level_id(after):
        return
    if is_lowering(before, after):
        _require_lowering(
            f"Lowering {field_label} from {level_name(before)} to {level_name(after)}",
            actor=actor,
            reason=reason,
        )
        return
    needed = (ADD_PERMISSION, CHANGE_PERMISSION) if creating else (CHANGE_PERMISSION,)
    if _is_person(actor) and not any(actor.has_perm(permission) for permission in needed):
        raise PermissionDenied(
            f"Classifying {field_label} {level_name(after)} needs the permission to "
            "change the dataset's contract."
        )


def check_field_removal(*, field: DatasetField, actor, reason: str = "") -> None:
    """Removing a classified field from its contract is lowering it to nothing."""
    level = _stored_level(field)
    if level is None:
        return
    _require_lowering(
        f"Removing {_label(field)} (classified {level.name}) from the contract",
        actor=actor,
        reason=reason,
    )


@dataclass(frozen=True)
class ClassificationChange:
    field: DatasetField
    before: ClassificationLevel | None
    after: ClassificationLevel | None
    reprotect_run: Run | None = None

    @property
    def lowered(self) -> bool:
        return is_lowering(self.before, self.after)

    @property
    def levels(self) -> str:
        return f"{level_name(self.before)} → {level_name(self.after)}"


def change_field_classification(
    *,
    field: DatasetField,
    level: ClassificationLevel | None,
    actor,
    reason: str = "",
    detail: str = "",
    created: bool = False,
) -> ClassificationChange | None:
    """Set a saved field's classification; None when it already is that level.

    `created`: the field was just added to its contract, so chart holds none of its
    values yet and nothing is re-protected. `detail` says where the change came from.
    """
    with transaction.atomic():
        # No select_related: FOR UPDATE cannot lock the nullable side of a join.
        stored = DatasetField.objects.select_for_update().get(pk=field.pk)
        before = stored.classification
        field.classification = level
        if _level_id(before) == _level_id(level):
            return None
        label = _label(stored)
        check_classification_change(
            field_label=label,
            before=before,
            after=level,
            actor=actor,
            reason=reason,
            creating=created,
        )
        stored.classification = level
        stored.save(update_fields=["classification"])
        lowered = is_lowering(before, level)
        levels = f"{level_name(before)} → {level_name(level)}"
        notes = [f"{'lowered' if lowered else 'raised'} the classification of {label}: {levels}"]
        if reason.strip():
            notes.append(f"reason: {reason.strip()}")
        if detail:
            notes.append(detail)
        record_audit(
            actor=actor,
            action=AuditAction.UPDATE,
            instance=stored,
            before={"classification": level_name(before)},
            after={"classification": level_name(level)},
            detail="; ".join(notes),
        )
        run = None
        if not created and changes_what_chart_stores(
            data_type=stored.data_type, before=_protection(before), after=_protection(level)
        ):
            run = request_reprotect(
                dataset=stored.dataset,
                triggered_by=f"classification of {label}",
                actor=actor,
                reason=f"{label}: {levels}",
            )
    return ClassificationChange(field=stored, before=before, after=level, reprotect_run=run)


def remove_dataset_field(*, field: DatasetField, actor, reason: str = "", detail: str = ""):
    """Delete a field from its contract; a classified one only as a lowering allows.

    Chart keeps the values it holds of the field as they are (ciphertext stays
    ciphertext): re-protection leaves fields outside the contract alone.
    """
    with transaction.atomic():
        # No select_related: FOR UPDATE cannot lock the nullable side of a join.
        stored = DatasetField.objects.select_for_update().get(pk=field.pk)
        check_field_removal(field=stored, actor=actor, reason=reason)
        label, before = _label(stored), snapshot(stored)
        level = stored.classification
        identity = {
            "object_type": stored._meta.label_lower,
            "object_id": str(stored.pk),
            "object_repr": label,
        }
        stored.delete()
        notes = [f"removed {label} from the contract"]
        if level is not None:
            notes[0] += f" (classified {level.name}: {level.name} → {UNCLASSIFIED})"
        if reason.strip():
            notes.append(f"reason: {reason.strip()}")
        if detail:
            notes.append(detail)
        record_audit(
            actor=actor,
            action=AuditAction.DELETE,
            before={**before, "classification": level_name(level)},
            detail="; ".join(notes),
            **identity,
        )


# --- What chart stores of a level -------------------------------------------------------


@dataclass(frozen=True)
class LevelProtection:
    rank: int
    requires_encryption: bool


def _protection(level: ClassificationLevel | None) -> LevelProtection | None:
    if level is None:
        return None
    return LevelProtection(rank=level.rank, requires_encryption=level.requires_encryption)


def _expected_patterns(protection: LevelProtection | None, ranks: dict[int, int]) -> frozenset:
    """Patterns whose PII a field at this level expects (chart.evaluation._note_pii)."""
    if protection is None:
        return frozenset()
    return frozenset(pk for pk, rank in ranks.items() if protection.rank >= rank)


def changes_what_chart_stores(
    *, data_type: str, before: LevelProtection | None, after: LevelProtection | None
) -> bool:
    """Whether chart would store a field's values differently at the new level.

    Encrypted or not; and, in a free-text field, which PII is tagged (PII the level
    does not expect) rather than kept: that depends on the level's rank.
    """
    was_encrypted = bool(before and before.requires_encryption)
    is_encrypted = bool(after and after.requires_encryption)
    if was_encrypted != is_encrypted:
        return True
    if is_encrypted or data_type != FieldType.STRING:
        return False
    ranks = {
        pk: rank or 0
        for pk, rank in PiiPattern.objects.filter(enabled=True).values_list(
            "pk", "default_classification__rank"
        )
    }
    return _expected_patterns(before, ranks) != _expected_patterns(after, ranks)


def level_changed(
    *, level: ClassificationLevel, rank_before: int, encryption_before: bool, actor
) -> list[Run]:
    """A level's rank or encryption changed: re-protect the datasets of its fields."""
    before = LevelProtection(rank=rank_before, requires_encryption=encryption_before)
    after = _protection(level)
    if before == after:
        return []
    fields = DatasetField.objects.filter(classification=level).select_related("dataset")
    datasets = {}
    for field in fields.order_by("dataset_id", "position"):
        if field.dataset_id in datasets:
            continue
        if changes_what_chart_stores(data_type=field.data_type, before=before, after=after):
            datasets[field.dataset_id] = field.dataset
    changes = []
    if before.rank != after.rank:
        changes.append(f"rank {before.rank} → {after.rank}")
    if before.requires_encryption != after.requires_encryption:
        changes.append("encrypted" if after.requires_encryption else "no longer encrypted")
    reason = f"level {level.name}: {', '.join(changes)}"
    runs = []
    with transaction.atomic():
        for dataset in datasets.values():
            run = request_reprotect(
                dataset=dataset,
                triggered_by=f"classification level {level.name}",
                actor=actor,
                reason=reason,
            )
            if run is not None:
                runs.append(run)
    return runs


def _level_id(level: ClassificationLevel | None) -> int | None:
    return level.pk if level is not None else None


def _stored_level(field: DatasetField) -> ClassificationLevel | None:
    # As stored: a form may have changed the instance's level in memory.
    if field.pk is None:
        return None
    return ClassificationLevel.objects.filter(dataset_fields__pk=field.pk).first()


def _label(field: DatasetField) -> str:
    return str(field)  # "dataset.field"


# --- Classification suggestions ---------------------------------------------------------


def _decide(suggestion, *, actor, status: str, note: str = ""):
    with transaction.atomic():
        suggestion = ClassificationSuggestion.objects.select_for_update().get(pk=suggestion.pk)
        if suggestion.status != SuggestionStatus.OPEN:
            raise ValidationError(
                f"This suggestion was already {suggestion.get_status_display().lower()} "
                f"by {suggestion.decided_by or 'someone'}."
            )
        before = snapshot(suggestion)
        suggestion.status = status
        suggestion.decided_by = actor.get_username() if hasattr(actor, "get_username") else actor
        suggestion.decided_at = timezone.now()
        suggestion.save()
        record_change(actor=actor, instance=suggestion, before=before, detail=note)
    return suggestion


def accept_suggestion(suggestion, *, actor, level=None, reason: str = ""):
    """Classify the field at the suggested level (or `level`); the next run protects it.

    Through the classification rules above: a level
    below the field's current one is a lowering, which needs a compliance officer and
    a reason.
    """
    with transaction.atomic():
        field = suggestion.dataset_field
        chosen = level or suggestion.suggested_level
        change_field_classification(
            field=field,
            level=chosen,
            actor=actor,
            reason=reason,
            detail=f"from PII suggestion {suggestion.pk}",
        )
        return _decide(
            suggestion,
            actor=actor,
            status=SuggestionStatus.ACCEPTED,
            note=f"field classified {chosen.name}",
        )


def reject_suggestion(suggestion, *, actor, reason: str):
    """Not raised again for this field unless the evidence changes (types or hit ratio)."""
    if not reason.strip():
        raise ValidationError("Say why the suggestion is rejected; the reason is kept.")
    return _decide(suggestion, actor=actor, status=SuggestionStatus.REJECTED, note=reason)
