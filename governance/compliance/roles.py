"""The three roles Atlas ships with, as Django groups with their permissions.

Only compliance officers change classification levels and PII patterns; stewards
change datasets, contracts, rules, metrics and weights; viewers only read.
Idempotent: a group's permissions are reset to exactly these.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

CLEARANCE_PREFIX = "see_level_"  # governance.compliance.clearance.CODENAME_PREFIX

DATA_STEWARD = "Data Steward"
COMPLIANCE_OFFICER = "Compliance Officer"
VIEWER = "Viewer"

ATLAS_APPS = ("explore", "chart", "navigate", "pipeline", "quality", "compliance", "archive")

# Models whose records only the audit trail readers may see.
AUDIT_READERS_ONLY = {("compliance", "auditlog")}

STEWARD_CHANGES = {
    ("pipeline", "dataset"): ("add", "change", "delete"),
    ("pipeline", "datasetfield"): ("add", "change", "delete"),
    ("pipeline", "run"): ("add",),
    ("quality", "qualityrule"): ("add", "change", "delete"),
    ("quality", "qualitydimension"): ("change",),
    ("navigate", "metricdefinition"): ("add", "change", "delete"),
    ("explore", "landingbatch"): ("add", "change"),
    ("chart", "quarantinedrecord"): ("change",),
    ("compliance", "classificationsuggestion"): ("change",),
    ("pipeline", "apitoken"): ("add", "change"),
    ("pipeline", "alertrule"): ("add", "change", "delete"),
    ("pipeline", "alertchannel"): ("add", "change", "delete"),
}

OFFICER_CHANGES = {
    ("compliance", "classificationlevel"): ("add", "change", "delete"),
    ("compliance", "piipattern"): ("add", "change", "delete"),
    ("pipeline", "datasetfield"): ("change",),
    ("archive", "retentionpolicy"): ("add", "change", "delete"),
    ("archive", "archivedpartition"): ("change",),
    ("compliance", "classificationsuggestion"): ("change",),
}

# Every role manages its own alert subscriptions (the admin shows each person their own).
EVERYONE_CHANGES = {("pipeline", "alertsubscription"): ("add", "change", "delete")}

# Permissions that are not add/change/delete/view of a model. Clearances for levels
# (compliance.see_level_<id>) are granted per group by compliance officers, not here.
OFFICER_SPECIAL = {("compliance", "lower_classification")}


def _codenames(changes: dict) -> set[tuple[str, str]]:
    return {
        (app_label, f"{action}_{model}")
        for (app_label, model), actions in changes.items()
        for action in actions
    }


def role_permissions(apps=global_apps) -> dict[str, set[tuple[str, str]]]:
    """Role name -> {(app_label, codename)}."""
    views = {
        (model._meta.app_label, model._meta.model_name)
        for app_label in ATLAS_APPS
        for model in apps.get_app_config(app_label).get_models()
    }
    view_all = {(app, f"view_{model}") for app, model in views}
    view_public = {(app, f"view_{model}") for app, model in views - AUDIT_READERS_ONLY}
    return {
        VIEWER: view_public | _codenames(EVERYONE_CHANGES),
        DATA_STEWARD: view_all | _codenames(STEWARD_CHANGES) | _codenames(EVERYONE_CHANGES),
        COMPLIANCE_OFFICER: (
            view_all | _codenames(OFFICER_CHANGES) | OFFICER_SPECIAL | _codenames(EVERYONE_CHANGES)
        ),
    }


def ensure_roles(apps=global_apps) -> None:

    # On a fresh database, permissions are made by post_migrate, after migrations:
    # make them now so that the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, wanted in role_permissions(apps).items():
        group, _ = Group.objects.get_or_create(name=role)
        # A migration older than some model sees fewer permissions; a later migration
        # runs this again once they exist.
        permissions = [
            permission
            for permission in Permission.objects.select_related("content_type")
            if (permission.content_type.app_label, permission.codename) in wanted
        ]
        # Clearances are compliance officers' decisions: kept as they are.
        clearances = group.permissions.filter(codename__startswith=CLEARANCE_PREFIX)
        group.permissions.set([*permissions, *clearances])
