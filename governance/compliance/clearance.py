"""Clearance: which classification levels a person may read in clear.

Every classification level has a permission of its own, "Can see values classified
<level>" (`compliance.see_level_<id>`), that compliance officers grant to groups on the
level's admin page. Masking is what a reader without that permission sees: a level's
masking rule applied wherever a value leaves the database (pages, exports, the API,
dashboards). A level without masking and encryption protects nothing and needs no
clearance. Values of a level that requires encryption are never shown in clear, not
even to a cleared reader: they are revealed one at a time, with a reason, audited
(governance.compliance.reveal).

Superusers hold every permission, so every clearance; their reveals are audited like
anyone's.
"""

from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import transaction

from governance.compliance.models import AuditAction, ClassificationLevel, MaskingRule
from governance.compliance.pii.masking import REDACTED, mask
from governance.compliance.roles import CLEARANCE_PREFIX
from governance.compliance.services import record_audit

CODENAME_PREFIX = CLEARANCE_PREFIX
# The roles Atlas ships with and the levels they are cleared for on a new installation;
# compliance officers change them afterwards (ensure_roles never touches clearances).
DEFAULT_CLEARANCES = {"Data Steward": ("internal",), "Compliance Officer": ("internal",)}


def clearance_codename(level_id: int) -> str:
    return f"{CODENAME_PREFIX}{level_id}"


def clearance_name(level_name: str) -> str:
    return f"Can see values classified {level_name}"[:255]


def sync_clearance_permissions(apps=global_apps) -> None:
    """One permission per level, named after it; none for a level that is gone."""
    ClassificationLevel = apps.get_model("compliance", "ClassificationLevel")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_type, _ = ContentType.objects.get_or_create(
        app_label="compliance", model="classificationlevel"
    )
    levels = dict(ClassificationLevel.objects.values_list("pk", "name"))
    existing = {
        permission.codename: permission
        for permission in Permission.objects.filter(
            content_type=content_type, codename__startswith=CODENAME_PREFIX
        )
    }
    for level_id, level_name in levels.items():
        codename = clearance_codename(level_id)
        permission = existing.pop(codename, None)
        if permission is None:
            Permission.objects.create(
                content_type=content_type, codename=codename, name=clearance_name(level_name)
            )
        elif permission.name != clearance_name(level_name):
            permission.name = clearance_name(level_name)
            permission.save(update_fields=["name"])
    for permission in existing.values():
        permission.delete()


def grant_default_clearances(apps=global_apps) -> None:
    """The shipped roles' clearances, for a new installation (or a flushed test database)."""
    sync_clearance_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ClassificationLevel = apps.get_model("compliance", "ClassificationLevel")
    for role, level_names in DEFAULT_CLEARANCES.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        level_ids = ClassificationLevel.objects.filter(name__in=level_names).values_list(
            "pk", flat=True
        )
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="compliance",
                codename__in=[clearance_codename(pk) for pk in level_ids],
            )
        )


@dataclass(frozen=True)
class Level:
    id: int
    name: str
    rank: int
    masking: str
    requires_encryption: bool

    @property
    def protects(self) -> bool:
        """Whether some reader would see its values otherwise than as they are."""
        return self.requires_encryption or self.masking != MaskingRule.NONE

    def masked(self, value: Any) -> Any:
        """A value as a reader without clearance sees it (None stays None)."""
        if value is None:
            return None
        if self.masking == MaskingRule.NONE:
            return REDACTED if self.requires_encryption else value
        return mask(value if isinstance(value, str) else _text(value), self.masking)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Clearance:
    """What one reader may see: built once per request from the levels and their grants."""

    def __init__(self, levels: dict[int, Level], cleared: frozenset[int], reader: str):
        self.levels = levels
        self.cleared = cleared
        self.reader = reader
        self.highest = max(levels.values(), key=lambda level: level.rank, default=None)

    @classmethod
    def for_user(cls, user) -> "Clearance":
        cached = getattr(user, "_atlas_clearance", None)
        if cached is not None:
            return cached

        levels = {
            level.pk: Level(
                level.pk, level.name, level.rank, level.masking, level.requires_encryption
            )
            for level in ClassificationLevel.objects.all()
        }
        if getattr(user, "is_active", False) and getattr(user, "is_authenticated", False):
            held = user.get_all_permissions()
            cleared = frozenset(
                pk
                for pk in levels
                if user.is_superuser or f"compliance.{clearance_codename(pk)}" in held
            )
            reader = user.get_username()
        else:
            cleared, reader = frozenset(), "anonymous"
        clearance = cls(levels, cleared, reader)
        if user is not None:
            user._atlas_clearance = clearance
        return clearance

    def level(self, level_id: int | None) -> Level | None:
        return None if level_id is None else self.levels.get(level_id)

    def is_cleared_for(self, level_id: int | None) -> bool:
        """Holds the level's clearance (or the level protects nothing)."""
        level = self.level(level_id)
        return level is None or not level.protects or level.id in self.cleared

    def sees(self, level_id: int | None) -> bool:
        """Reads the level's values in clear: cleared, and the level is not encrypted."""
        level = self.level(level_id)
        if level is None:
            return True
        return not level.requires_encryption and self.is_cleared_for(level_id)

    def show(self, value: Any, level_id: int | None) -> Any:
        """The value, or its masked form for this reader."""
        level = self.level(level_id)
        if level is None or self.sees(level_id):
            return value
        return level.masked(value)

    def highest_of(self, level_ids) -> int | None:
        """The most sensitive of these levels (None: none of them is a level)."""
        known = [self.levels[pk] for pk in level_ids if pk in self.levels]
        return max(known, key=lambda level: level.rank).id if known else None

    def cleared_level_names(self) -> list[str]:
        return [
            level.name
            for level in sorted(self.levels.values(), key=lambda level: level.rank)
            if level.protects and level.id in self.cleared
        ]


def cleared_groups(level) -> list:
    """The groups holding a level's clearance."""

    return list(
        Group.objects.filter(
            permissions__content_type__app_label="compliance",
            permissions__codename=clearance_codename(level.pk),
        ).order_by("name")
    )


def set_cleared_groups(*, level, groups, actor) -> tuple[list, list]:
    """Grant a level's clearance to exactly these groups; (granted, withdrawn), each audited.

    A compliance officer's decision: only who may change classification levels may make it.
    """

    if not actor.has_perm("compliance.change_classificationlevel"):
        raise PermissionDenied("Only compliance officers grant clearances.")
    sync_clearance_permissions()
    permission = Permission.objects.get(
        content_type__app_label="compliance", codename=clearance_codename(level.pk)
    )
    with transaction.atomic():
        current = set(cleared_groups(level))
        wanted = set(groups)
        granted = sorted(wanted - current, key=lambda group: group.name)
        withdrawn = sorted(current - wanted, key=lambda group: group.name)
        for group in granted:
            group.permissions.add(permission)
        for group in withdrawn:
            group.permissions.remove(permission)
        for group, change, verb in [(g, "granted", "may now see") for g in granted] + [
            (g, "withdrawn", "may no longer see") for g in withdrawn
        ]:
            record_audit(
                actor=actor,
                action=AuditAction.UPDATE,
                instance=group,
                after={"clearance": level.name, "change": change},
                detail=f"clearance {change}: members of {group.name} {verb} values "
                f"classified {level.name}",
            )
    return granted, withdrawn
