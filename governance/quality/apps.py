from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "governance.quality"
    label = "quality"
    verbose_name = "Quality: dimensions, rules, scores"
