from django.apps import AppConfig


class ExploreConfig(AppConfig):
    name = "explore"
    label = "explore"
    verbose_name = "Explore (bronze): landed data"
