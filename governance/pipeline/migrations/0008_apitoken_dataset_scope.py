# API tokens limited to some datasets. Existing tokens get all_datasets = true, so they
# keep reaching what they reached before (their expiry, none, is left as it is).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pipeline", "0007_run_kind_reprotect"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="all_datasets",
            field=models.BooleanField(
                default=True,
                help_text="The token reaches every dataset its user may change; otherwise only the datasets listed.",
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="datasets",
            field=models.ManyToManyField(
                blank=True,
                help_text="Only these datasets (of those the user may change), when the token is limited.",
                related_name="api_tokens",
                to="pipeline.dataset",
            ),
        ),
    ]
