# Datasets limited to groups: only their members (and the owner) read its records.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("pipeline", "0005_dead_letter"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="reader_groups",
            field=models.ManyToManyField(
                blank=True,
                help_text="Only members of these groups (and the owner) read this dataset's records; everyone else sees that the dataset exists, but none of its records. Empty: whoever may view records.",
                related_name="readable_datasets",
                to="auth.group",
            ),
        ),
    ]
