from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    label = "dashboards"
    verbose_name = "Dashboards: read-only pages for every role"

    def ready(self) -> None:
        from dashboards import signals  # noqa: F401  (connects the run-ended receiver)
