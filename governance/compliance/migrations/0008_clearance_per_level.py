# A clearance permission per classification level (compliance.see_level_<id>), the
# shipped roles' default clearances, and the permission to lower a classification.

from django.db import migrations, models

from governance.compliance.clearance import grant_default_clearances
from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)  # makes the new permissions, and gives officers lower_classification
    grant_default_clearances(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0007_stewards_issue_api_tokens"),
        ("chart", "0005_reveal_by_clearance"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="classificationlevel",
            options={
                "ordering": ["rank"],
                "permissions": [
                    (
                        "lower_classification",
                        "Can lower or remove a field's classification (with a reason, audited)",
                    )
                ],
            },
        ),
        migrations.AlterField(
            model_name="classificationlevel",
            name="masking",
            field=models.CharField(
                choices=[
                    ("none", "Shown as is"),
                    ("partial", "Partial: keep the last 4 characters"),
                    ("full", "Full: replace every character"),
                    ("hash", "Hash: a keyed SHA-256 digest (joinable, not readable)"),
                    ("redact", "Redact: replace with [REDACTED]"),
                ],
                default="none",
                help_text="How values are shown to people without clearance for this level.",
                max_length=16,
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
