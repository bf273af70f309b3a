from django.db import migrations

from governance.compliance.roles import ensure_roles


def forwards(apps, schema_editor):
    ensure_roles(apps)  # every role manages its own alert subscriptions


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0015_stewards_set_alerts"),
        ("pipeline", "0012_alert_kinds_subscriptions_heartbeats"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
