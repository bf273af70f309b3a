"""Facts' dimension keys made keyed HMACs (navigate.services.DIMENSION_KEY_PURPOSE) in
place of md5 digests of the dimension values, which could be matched against digests of
guessed values. The same statement as `manage.py rekey_facts`, written out here so that
a later change of the service does not change what this migration did."""

from django.db import migrations, models

from governance.compliance.tokens import TokenKeyring

REKEY = """
UPDATE "navigate"."fact"
   SET dimension_key = encode(sha256(%(key_outer)s::bytea || sha256(%(key_inner)s::bytea
                          || convert_to(dimensions::text, 'UTF8'))), 'hex')
"""


def keyed_dimension_keys(apps, schema_editor):
    Fact = apps.get_model("navigate", "Fact")
    if not Fact.objects.exists():
        return  # a new installation: no key needed to change nothing
    inner, outer = TokenKeyring.from_settings().sql_hmac_pads("navigate.fact.dimension_key")
    schema_editor.execute(REKEY, {"key_inner": inner, "key_outer": outer})


class Migration(migrations.Migration):
    dependencies = [
        ("navigate", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(keyed_dimension_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="fact",
            name="dimension_key",
            field=models.CharField(
                help_text="Keyed HMAC of the dimension values, never shown: the upsert key.",
                max_length=64,
            ),
        ),
    ]
