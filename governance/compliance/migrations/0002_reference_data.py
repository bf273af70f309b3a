from django.db import migrations

from governance.compliance.reference_data import ensure_reference_data


def forwards(apps, schema_editor):
    ensure_reference_data(apps)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
