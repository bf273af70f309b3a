from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "governance.pipeline"
    label = "pipeline"
    verbose_name = "Pipeline: catalog, contracts, runs"
