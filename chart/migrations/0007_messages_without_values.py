# Messages stored before Atlas kept values out of them (quarantine reasons, warn-gate
# issues, check results' examples, run errors), rewritten once: each message without the
# value it quoted, each excerpt protected at its field's level (chart.reprotect).

from django.db import migrations


def forwards(apps, schema_editor):
    from chart.reprotect import scrub_legacy_messages

    scrub_legacy_messages(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("chart", "0006_chart_record_legacy_idx"),
        ("quality", "0002_dimensions"),
        ("pipeline", "0007_run_kind_reprotect"),
        ("compliance", "0008_clearance_per_level"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
