"""Creates the seven Atlas schemas. Every other Atlas migration depends on this one."""

from django.db import migrations

from atlas_site.schemas import ALL_SCHEMAS

create_sql = "\n".join(f'CREATE SCHEMA IF NOT EXISTS "{schema}";' for schema in ALL_SCHEMAS)
# Dropping is only done when a schema is empty (no CASCADE): nothing stored is lost.
drop_sql = "\n".join(f'DROP SCHEMA IF EXISTS "{schema}";' for schema in reversed(ALL_SCHEMAS))


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunSQL(create_sql, drop_sql)]
