from django.db import migrations

from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)  # stewards add, change and delete alert rules and channels


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0014_phone_validator_label"),
        ("pipeline", "0011_alerts"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
