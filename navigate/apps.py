from django.apps import AppConfig


class NavigateConfig(AppConfig):
    name = "navigate"
    label = "navigate"
    verbose_name = "Navigate (gold): business facts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from navigate.reporting import rebuild_after_migrate

        post_migrate.connect(rebuild_after_migrate, sender=self, dispatch_uid="navigate.reporting")
