# A partial index of the chart records still masked at promotion (protection_version 1):
# `manage.py rebuild_chart_values` walks them and the atlas.W010 check counts them
# without reading the whole table. Built CONCURRENTLY: chart keeps taking writes.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chart", "0005_reveal_by_clearance"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="chartrecord",
            index=models.Index(
                condition=models.Q(("protection_version", 1)),
                fields=["dataset", "id"],
                name="chart_record_legacy_idx",
            ),
        ),
    ]
