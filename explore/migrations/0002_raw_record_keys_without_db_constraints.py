"""raw_record's foreign keys lose their database constraints (see RawRecord.batch).

Django would run `SET CONSTRAINTS "<name>" IMMEDIATE` first, which PostgreSQL resolves
through the search path and so cannot find in the explore schema; on this partitioned
table the SQL is written out, as for its creation (DESIGN.md).
"""

import django.db.models.deletion
from django.db import migrations, models

DROP = """
ALTER TABLE "explore"."raw_record"
    DROP CONSTRAINT "raw_record_batch_id_d31050d0_fk_landing_batch_id",
    DROP CONSTRAINT "raw_record_dataset_id_c76967ba_fk_dataset_id";
"""
RESTORE = """
ALTER TABLE "explore"."raw_record"
    ADD CONSTRAINT "raw_record_batch_id_d31050d0_fk_landing_batch_id" FOREIGN KEY ("batch_id")
        REFERENCES "explore"."landing_batch" ("id") DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT "raw_record_dataset_id_c76967ba_fk_dataset_id" FOREIGN KEY ("dataset_id")
        REFERENCES "pipeline"."dataset" ("id") DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("explore", "0001_initial"),
        ("pipeline", "0004_lineage_grouped_transform"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="rawrecord",
                    name="batch",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="raw_records",
                        to="explore.landingbatch",
                    ),
                ),
                migrations.AlterField(
                    model_name="rawrecord",
                    name="dataset",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="pipeline.dataset",
                    ),
                ),
            ],
            database_operations=[migrations.RunSQL(DROP, RESTORE)],
        ),
    ]
