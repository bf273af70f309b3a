from django.apps import AppConfig


class ChartConfig(AppConfig):
    name = "chart"
    label = "chart"
    verbose_name = "Chart (silver): validated records"
