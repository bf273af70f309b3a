# Runs that re-protect a dataset's chart values after a classification change
# (chart.reprotect). Choices live in Python only: nothing changes in the database.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pipeline", "0006_dataset_reader_groups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="run",
                    name="kind",
                    field=models.CharField(
                        choices=[
                            ("ingest", "Ingest into explore"),
                            ("promote_chart", "Promote explore → chart"),
                            ("promote_navigate", "Promote chart → navigate"),
                            ("maintenance", "Partition maintenance"),
                            ("archive", "Retention and archive"),
                            ("reprotect", "Re-protect chart values"),
                        ],
                        max_length=32,
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
