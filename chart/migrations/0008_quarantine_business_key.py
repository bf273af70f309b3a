# Quarantined records carry their business key (as chart keeps one: chart.business_keys),
# for the quarantine review's key column and search. The column is added with a constant
# default (no table rewrite), every existing record's key is made from its raw payload
# or its corrected copy, chunk by chunk, and the index is built once they are written.

from django.db import migrations, models


def fill_keys(apps, schema_editor):
    # The keys need the contract's typing and keyed tokens, whose key never goes to the
    # database: chart's own code makes them (one query to read and one UPDATE to write
    # per chunk of 2,000 records). Nothing to read on a database without quarantine.
    from chart.business_keys import fill_quarantine_keys

    QuarantinedRecord = apps.get_model("chart", "QuarantinedRecord")
    if QuarantinedRecord.objects.exists():
        fill_quarantine_keys()


class Migration(migrations.Migration):
    dependencies = [
        ("chart", "0007_messages_without_values"),
        ("pipeline", "0010_threshold_default_as_decimal"),
        ("compliance", "0014_phone_validator_label"),
        ("explore", "0005_lines_and_records_apart"),
    ]

    operations = [
        migrations.AddField(
            model_name="quarantinedrecord",
            name="business_key",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text="The key fields' typed values joined by |, a part chart holds "
                "encrypted or tagged as its keyed token; empty when the record has no whole "
                "key.",
                max_length=500,
            ),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="quarantinedrecord",
            index=models.Index(
                fields=["dataset", "business_key"],
                name="quarantine_key_idx",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
        ),
    ]
