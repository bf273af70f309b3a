"""The shipped IPv6 pattern could start at a lone colon ("ip:2001:db8::1" was missed).

Only a pattern still holding the old shipped regex is changed: a steward's own edit
stands.
"""

from django.db import migrations

OLD = r"(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}"
NEW = (
    r"(?:\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})"
)


def forwards(apps, schema_editor):
    apps.get_model("compliance", "PiiPattern").objects.filter(regex=OLD).update(regex=NEW)


def backwards(apps, schema_editor):
    apps.get_model("compliance", "PiiPattern").objects.filter(regex=NEW).update(regex=OLD)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0005_roles_for_suggestions_and_reveal")]
    operations = [migrations.RunPython(forwards, backwards)]
