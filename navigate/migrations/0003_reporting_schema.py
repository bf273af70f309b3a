"""The `reporting` schema: typed views for BI readers, built by navigate.reporting.

Its views are derived (rebuilt from contracts and metric definitions after every
`migrate` and every change), so going back drops them with the schema.
"""

from django.db import migrations

from atlas_site.schemas import REPORTING


class Migration(migrations.Migration):
    dependencies = [("navigate", "0002_dimension_keys_keyed")]
    operations = [
        migrations.RunSQL(
            f'CREATE SCHEMA IF NOT EXISTS "{REPORTING}";',
            f'DROP SCHEMA IF EXISTS "{REPORTING}" CASCADE;',
        )
    ]
