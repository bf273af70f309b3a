from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    label = "orchestration"
    verbose_name = "Orchestration: what runs next, and work nobody is doing"

    def ready(self) -> None:
        from celery.signals import beat_init, worker_ready, worker_shutting_down

        from orchestration import (  # noqa: F401  (connects the receivers)
            liveness,
            reactions,
            reporting,
            watchdog,
        )

        reporting.connect()
        worker_ready.connect(watchdog.start_on_worker_ready, weak=False)
        worker_shutting_down.connect(watchdog.stop_on_shutdown, weak=False)
        # Workers and beat say they are alive, and watch that the alerts are evaluated.
        worker_ready.connect(liveness.start_on_worker_ready, weak=False)
        beat_init.connect(liveness.start_on_beat_init, weak=False)
        worker_shutting_down.connect(liveness.stop_on_shutdown, weak=False)
