"""Landing files are stored encrypted: each batch names the key that wraps its file's data key.

Batches stored before keep NULL: their files are plain and are read as they are
(governance.compliance.envelope passes an object without its magic through).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("explore", "0003_batch_raw_id_range"),
    ]

    operations = [
        migrations.AddField(
            model_name="landingbatch",
            name="encryption_key_id",
            field=models.CharField(
                blank=True, default=None, editable=False, max_length=255, null=True
            ),
        ),
    ]
