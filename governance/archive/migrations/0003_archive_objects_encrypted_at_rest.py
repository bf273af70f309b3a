"""Archive objects are stored encrypted: each manifest names the key wrapping the data key.

The manifest's byte_size and sha256 describe the stored object (encrypted from now
on, plain gzip for the manifests written before, which keep a NULL key id).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0002_retention_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="archivedpartition",
            name="encryption_key_id",
            field=models.CharField(
                blank=True,
                default=None,
                help_text="The ATLAS_ENCRYPTION_KEYS entry wrapping the object's data key; "
                "empty for an object archived before encryption (plain gzip).",
                max_length=255,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="archivedpartition",
            name="byte_size",
            field=models.BigIntegerField(help_text="Size of the stored (encrypted) object."),
        ),
        migrations.AlterField(
            model_name="archivedpartition",
            name="sha256",
            field=models.CharField(
                help_text="SHA-256 of the stored (encrypted) object.", max_length=64
            ),
        ),
    ]
