# Revealing a value needs clearance for its field's level (compliance.see_level_<id>), not
# one permission for every restricted value: that permission goes.

from django.db import migrations


def drop_reveal_permission(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="chart", codename="reveal_restricted"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("chart", "0004_typed_values_tokens_sealed_finding_positions"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="chartrecord",
            options={"ordering": ["-id"]},
        ),
        migrations.RunPython(drop_reveal_permission, migrations.RunPython.noop),
    ]
