from django.apps import AppConfig


class NavigateConfig(AppConfig):
    name = "navigate"
    label = "navigate"
    verbose_name = "Navigate (gold): business facts"
