from django.db import migrations

from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0004_classificationsuggestion"),
        ("chart", "0002_record_issues_and_reveal_permission"),
        ("compliance", "0003_roles"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
