"""chart_record's keys lose their database constraints, and the dataset and raw record
their own indexes (see ChartRecord.dataset).

Written out in SQL, as for raw_record (explore 0002): Django would run
`SET CONSTRAINTS "<name>" IMMEDIATE` first, which PostgreSQL resolves through the search
path and so cannot find in the chart schema.
"""

import django.db.models.deletion
from django.db import migrations, models

DROP = """
ALTER TABLE "chart"."chart_record"
    DROP CONSTRAINT "chart_record_dataset_id_5c337e49_fk_dataset_id",
    DROP CONSTRAINT "chart_record_run_id_864bba2c_fk_run_id",
    DROP CONSTRAINT "chart_record_superseded_by_id_47dd681c_fk_chart_record_id";
DROP INDEX "chart"."chart_record_dataset_id_5c337e49";
DROP INDEX "chart"."chart_record_raw_record_id_bfbbee9c";
"""
RESTORE = """
CREATE INDEX "chart_record_dataset_id_5c337e49" ON "chart"."chart_record" ("dataset_id");
CREATE INDEX "chart_record_raw_record_id_bfbbee9c" ON "chart"."chart_record" ("raw_record_id");
ALTER TABLE "chart"."chart_record"
    ADD CONSTRAINT "chart_record_dataset_id_5c337e49_fk_dataset_id" FOREIGN KEY ("dataset_id")
        REFERENCES "pipeline"."dataset" ("id") DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT "chart_record_run_id_864bba2c_fk_run_id" FOREIGN KEY ("run_id")
        REFERENCES "pipeline"."run" ("id") DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT "chart_record_superseded_by_id_47dd681c_fk_chart_record_id"
        FOREIGN KEY ("superseded_by_id")
        REFERENCES "chart"."chart_record" ("id") DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("chart", "0008_quarantine_business_key"),
        ("explore", "0005_lines_and_records_apart"),
        ("pipeline", "0010_threshold_default_as_decimal"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="chartrecord",
                    name="dataset",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="pipeline.dataset",
                    ),
                ),
                migrations.AlterField(
                    model_name="chartrecord",
                    name="raw_record",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="explore.rawrecord",
                    ),
                ),
                migrations.AlterField(
                    model_name="chartrecord",
                    name="run",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="pipeline.run",
                    ),
                ),
                migrations.AlterField(
                    model_name="chartrecord",
                    name="superseded_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="chart.chartrecord",
                    ),
                ),
            ],
            database_operations=[migrations.RunSQL(DROP, RESTORE)],
        ),
    ]
