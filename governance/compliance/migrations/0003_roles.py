from django.db import migrations

from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)


class Migration(migrations.Migration):
    # Every app whose models the roles grant permissions on.
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("compliance", "0002_reference_data"),
        ("pipeline", "0002_initial"),
        ("explore", "0001_initial"),
        ("chart", "0001_initial"),
        ("navigate", "0001_initial"),
        ("quality", "0002_dimensions"),
        ("archive", "0001_initial"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
