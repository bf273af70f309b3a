from django.apps import AppConfig
from django.core import checks


class ChartConfig(AppConfig):
    name = "chart"
    label = "chart"
    verbose_name = "Chart (silver): validated records"

    def ready(self) -> None:
        from django.db.models.signals import pre_save

        from chart.business_keys import follow_key_definition
        from chart.checks import legacy_chart_values
        from governance.pipeline.models import Dataset

        pre_save.connect(follow_key_definition, sender=Dataset, dispatch_uid="chart.key_definition")

        # A database check: `migrate` and `check --database default` run it.
        checks.register(legacy_chart_values, checks.Tags.database)
