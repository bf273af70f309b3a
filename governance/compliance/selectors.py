"""Reads of the compliance app's own tables for the pages above it."""

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
