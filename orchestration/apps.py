from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    label = "orchestration"
    verbose_name = "Orchestration: what runs next, and work nobody is doing"

    def ready(self) -> None:
        from celery.signals import worker_ready, worker_shutting_down

        from orchestration import reactions, watchdog  # noqa: F401  (connects the receivers)

        worker_ready.connect(watchdog.start_on_worker_ready, weak=False)
        worker_shutting_down.connect(watchdog.stop_on_shutdown, weak=False)
