# Chart keeps typed values (restricted ones encrypted, with keyed tokens); records
# stored before this migration were masked at promotion and are marked version 1, for
# `manage.py rebuild_chart_values` to turn typed again from explore.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chart", "0003_quarantine_review"),
    ]

    operations = [
        migrations.AddField(
            model_name="chartrecord",
            name="protection_version",
            field=models.PositiveSmallIntegerField(
                default=1,
                help_text="1: masked at promotion (rebuild_chart_values turns it typed); 2: typed.",
            ),
        ),
        migrations.AlterField(
            model_name="chartrecord",
            name="protection_version",
            field=models.PositiveSmallIntegerField(
                default=2,
                help_text="1: masked at promotion (rebuild_chart_values turns it typed); 2: typed.",
            ),
        ),
        migrations.AddField(
            model_name="chartrecord",
            name="sealed",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Originals of values whose PII was replaced by its type, encrypted: {"data": {field: …}, "extras": {field: …}}; for reveal and re-processing.',
            ),
        ),
        migrations.AddField(
            model_name="chartrecord",
            name="tokens",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Keyed tokens (ATLAS_HASH_KEY) of encrypted, tagged and unique fields' values: equality without the values.",
            ),
        ),
        migrations.AddField(
            model_name="piifinding",
            name="span_end",
            field=models.PositiveIntegerField(
                blank=True, help_text="Where it ends (exclusive).", null=True
            ),
        ),
        migrations.AddField(
            model_name="piifinding",
            name="span_start",
            field=models.PositiveIntegerField(
                blank=True, help_text="Where the PII starts in the value as received.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="chartrecord",
            name="data",
            field=models.JSONField(
                help_text="Typed values of the contract's fields; ciphertext where the level requires encryption; PII the level does not expect replaced by its type (<payment_card>)."
            ),
        ),
        migrations.AlterField(
            model_name="chartrecord",
            name="extras",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Fields not in the contract, kept aside as received (PII replaced by its type).",
            ),
        ),
    ]
