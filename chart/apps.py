from django.apps import AppConfig
from django.core import checks


class ChartConfig(AppConfig):
    name = "chart"
    label = "chart"
    verbose_name = "Chart (silver): validated records"

    def ready(self) -> None:
        from chart.checks import legacy_chart_values

        # A database check: `migrate` and `check --database default` run it.
        checks.register(legacy_chart_values, checks.Tags.database)
