from django.db import migrations

from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0006_ipv6_pattern_from_a_word_boundary"),
        ("pipeline", "0003_apitoken"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
