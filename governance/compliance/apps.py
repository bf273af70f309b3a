from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "governance.compliance"
    label = "compliance"
    verbose_name = "Compliance: classification, PII, audit"

    def ready(self) -> None:
        from governance.compliance import signals

        signals.connect()
