"""Per-run summaries the dashboards read instead of scanning chart's big tables.

PII findings and quarantine reasons can run to millions of rows; grouping them on every
page view would miss the 500 ms goal. Once a promotion run has ended its rows never
change, so each is summarised once (`services.refresh_run_summaries`, queued when a run
ends). The tables are keyed by run, so they live in the pipeline schema beside the runs.
"""

from django.db import models

from atlas_site.schemas import PIPELINE, qualified


class SummarisedRun(models.Model):
    """A run whose findings and reasons are in the summaries (even when it had none)."""

    run = models.OneToOneField(
        "pipeline.Run", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    summarised_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(PIPELINE, "dashboard_summarised_run")

    def __str__(self) -> str:
        return f"run {self.run_id} summarised"


class PiiFindingSummary(models.Model):
    """How many PII findings one run made, per field and PII type."""

    run = models.ForeignKey("pipeline.Run", on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The day the run started (UTC).")
    field_name = models.CharField(max_length=63)
    pii_type = models.CharField(max_length=32)
    findings = models.BigIntegerField()

    class Meta:
        db_table = qualified(PIPELINE, "dashboard_pii_summary")
        indexes = [models.Index(fields=["day"], name="dash_pii_day_idx")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.field_name} {self.pii_type}: {self.findings}"


class QuarantineReasonSummary(models.Model):
    """How many records one run quarantined, per field and failed rule."""

    run = models.ForeignKey("pipeline.Run", on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The day the run started (UTC).")
    field_name = models.CharField(max_length=63, blank=True)
    rule = models.CharField(max_length=63)
    records = models.BigIntegerField()

    class Meta:
        db_table = qualified(PIPELINE, "dashboard_quarantine_summary")
        indexes = [models.Index(fields=["day"], name="dash_quarantine_day_idx")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.field_name} {self.rule}: {self.records}"
