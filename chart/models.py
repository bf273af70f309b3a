from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from atlas_site.schemas import CHART, qualified


class ChartRecord(models.Model):
    """A raw record that passed its contract: typed, with sensitive values protected."""

    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="+")
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    business_key = models.CharField(max_length=500, blank=True)
    data = models.JSONField(help_text="Typed, protected values of the contract's fields.")
    extras = models.JSONField(
        default=dict, blank=True, help_text="Fields not in the contract, kept aside as received."
    )
    issues = models.JSONField(
        default=list,
        blank=True,
        help_text="Rules this record failed under a 'warn' gate: {field, rule, message, excerpt}.",
    )
    is_current = models.BooleanField(
        default=True, help_text="False once a later record with the same business key arrived."
    )
    superseded_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    run = models.ForeignKey("pipeline.Run", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(CHART, "chart_record")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "raw_record"], name="chart_record_once"),
        ]
        indexes = [
            models.Index(fields=["dataset", "business_key"], name="chart_record_key_idx"),
        ]
        permissions = [
            (
                "reveal_restricted",
                "Can reveal decrypted restricted values (each reveal is audited)",
            ),
        ]

    def __str__(self) -> str:
        return f"chart {self.pk} ({self.dataset_id}, key {self.business_key or '-'})"


class QuarantineStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPROCESSED = "reprocessed", "Re-processed"
    DISMISSED = "dismissed", "Dismissed"


class QuarantinedRecord(models.Model):
    """A raw record that failed its contract, with every reason."""

    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="+")
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    reasons = models.JSONField(help_text="A list of {field, rule, value_excerpt, message}.")
    status = models.CharField(
        max_length=16, choices=QuarantineStatus, default=QuarantineStatus.OPEN
    )
    run = models.ForeignKey("pipeline.Run", on_delete=models.PROTECT, related_name="+")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A steward's fix: the raw record in explore stays exactly as received.
    corrected_payload = models.JSONField(
        null=True,
        blank=True,
        help_text="The raw payload with a steward's corrections; re-processing judges this "
        "instead of the raw payload.",
    )
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    reprocess_run = models.ForeignKey(
        "pipeline.Run",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The latest run that re-processed this record.",
    )
    chart_record = models.ForeignKey(
        ChartRecord,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The chart record it became once re-processed.",
    )

    class Meta:
        db_table = qualified(CHART, "quarantined_record")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "raw_record"], name="quarantine_once"),
        ]
        indexes = [
            models.Index(fields=["dataset", "status"], name="quarantine_dataset_status_idx"),
            # Filtering by field and reason (`reasons @> '[{"field": ...}]'`) on millions
            # of rows: jsonb_path_ops answers containment only, and is the smaller index.
            GinIndex(
                fields=["reasons"], opclasses=["jsonb_path_ops"], name="quarantine_reasons_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"quarantined {self.pk} ({self.dataset_id})"


class PiiFinding(models.Model):
    """PII seen in a record's field. Holds a masked excerpt, never the raw value."""

    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="+")
    # explore.raw_record is partitioned: a real foreign key would need its partition key.
    raw_record = models.ForeignKey(
        "explore.RawRecord",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    chart_record = models.ForeignKey(
        ChartRecord, on_delete=models.CASCADE, null=True, blank=True, related_name="pii_findings"
    )
    field_name = models.CharField(max_length=63)
    pii_type = models.CharField(max_length=32)
    pattern = models.ForeignKey(
        "compliance.PiiPattern", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confidence = models.DecimalField(max_digits=3, decimal_places=2)
    masked_excerpt = models.CharField(max_length=200)
    run = models.ForeignKey("pipeline.Run", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = qualified(CHART, "pii_finding")
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["dataset", "field_name", "pii_type"], name="pii_finding_field_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pii_type} in {self.dataset_id}.{self.field_name}"
